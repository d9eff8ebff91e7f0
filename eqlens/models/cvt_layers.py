"""Convolutional vision transformer (CvT) building blocks, shared by ``cvt``, ``eqcvt`` and ``eqcvt_inv``.

Every block works on token grids ``[B, C, H, W]`` (a token per pixel of the grid, channels first,
as in lucidrains' ``vit_pytorch.cvt`` on which the original EqCvT was built):

- :class:`CvTStage`: convolutional token embedding (strided conv + channel LayerNorm), then
  ``depth`` :class:`TransformerBlock` s, then a ``Tap("map")`` on the token grid;
- :class:`TransformerBlock`: pre-norm :class:`ConvAttention` and pre-norm :class:`FeedForward`,
  each with a residual connection;
- :class:`ConvAttention`: multi-head attention whose queries, keys and values come from
  depthwise-separable convolutions (:class:`DepthwiseSeparableProjection`); keys and values
  are computed with stride ``kv_stride``, so the key grid is smaller than the query grid;
- :class:`ClassifierHead`: global average pool -> Linear -> BatchNorm1d -> ELU ->
  ``Tap("features")`` -> Linear.

Symmetric kernels. Every block takes ``symmetry``: ``None`` for ordinary convolutions, or a
:class:`~eqlens.groups.Group` whose exact elements (90-deg multiples and flips) every spatial
kernel is made invariant under (:class:`OrbitSharedConv2d`, weights shared over pixel orbits).
All other parts of a block are pointwise in space (1x1 convs, LayerNorm, BatchNorm, GELU) or
treat tokens as a set (attention has no positional encoding; the only positional cue is the
zero padding of the convolutions, which is as symmetric as the grid), so on centred grids a
rotation or flip ``g`` of the input grid moves every token grid by ``g`` and the pooled
features do not change. :class:`OrbitSharedConv2d` keeps the grids centred: see its docstring.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..groups import Group, act_on_image
from .cost import ModelCost, conv_out
from .inspection import AttentionRecorder, Tap


@dataclass(frozen=True)
class StageConfig:
    """Plain-data description of one CvT stage (the numbers of the CvT paper's tables)."""

    dim: int  # token channels
    embed_kernel: int
    embed_stride: int
    heads: int
    depth: int  # transformer blocks
    mlp_ratio: int
    head_dim: int = 64
    proj_kernel: int = 3  # depthwise kernel of the q/k/v projections
    kv_stride: int = 2


def kernel_orbits(kernel_size: int, symmetry: Group) -> torch.Tensor:
    """``[k, k]`` long tensor: the orbit number of every kernel tap under the exact elements of
    ``symmetry`` acting on the ``k x k`` grid about its centre (orbits numbered 0, 1, ... in
    order of their first tap). A kernel that is constant on orbits is invariant under them."""
    taps = torch.arange(kernel_size * kernel_size).reshape(kernel_size, kernel_size)
    # act_on_image(taps, g)[p] is the tap at g^-1 p; over a group the minimum names p's orbit.
    moved = torch.stack([act_on_image(taps, g) for g in symmetry.exact_elements])
    representative = moved.min(dim=0).values
    _, orbit = torch.unique(representative, return_inverse=True)
    return orbit


class OrbitSharedConv2d(nn.Module):
    """``nn.Conv2d`` whose ``k x k`` kernels are invariant under the exact elements of ``symmetry``,
    by sharing one weight over each orbit of kernel taps (compare :class:`eqlens.models.gsa_layers.GroupAveragedConv2d`,
    which keeps a free kernel and averages it over the group).

    Weight sharing by construction: one parameter per (output, input, orbit of kernel taps)
    (a 3x3 kernel under C4 or D4 has 3 free values: centre, edges, corners), expanded to the
    full kernel by indexing. Such a kernel commutes with every exact ``g``:
    ``conv(g x) = g conv(x)`` on ``[B, C, H, W]``, exactly up to float summation order,
    provided the sampled output grid is centred on the input grid.

    Centring: stride 1 uses padding ``k // 2`` (``k`` must be odd). Stride 2 on an odd size ``n``
    samples a centred grid for any padding ``p`` (the first and last sampled pixels sit at
    ``k//2 - p`` and ``n - 1 - (k//2 - p)``); ``p`` is picked at run time, per axis, from
    ``k // 2`` and ``k // 2 - 1`` so that the output ``(n + 2p - k) / 2 + 1`` is odd again, and
    a further stride-2 layer stays centred (129 -> 65 -> 33, 35 -> 17 -> 9). On even sizes a
    stride-2 grid cannot be centred; the layer still runs (padding ``k // 2``) but is not exact.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, symmetry: Group, *,
                 stride: int = 1, groups: int = 1, bias: bool = True):
        super().__init__()
        if kernel_size % 2 == 0:
            raise ValueError(f"symmetric kernels need an odd size, got {kernel_size}")
        if stride not in (1, 2):
            raise ValueError(f"OrbitSharedConv2d keeps grids centred for stride 1 or 2, got {stride}")
        self.in_channels, self.out_channels = in_channels, out_channels
        self.kernel_size, self.stride, self.groups = kernel_size, stride, groups
        self.symmetry_name = symmetry.name
        orbit = kernel_orbits(kernel_size, symmetry)
        self.register_buffer("orbit_index", orbit, persistent=False)
        n_orbits = int(orbit.max()) + 1
        fan_in = in_channels // groups * kernel_size * kernel_size
        # nn.Conv2d's default initialisation: uniform with bound 1/sqrt(fan_in).
        bound = 1.0 / math.sqrt(fan_in)
        self.weight = nn.Parameter(torch.empty(out_channels, in_channels // groups, n_orbits).uniform_(-bound, bound))
        self.bias = nn.Parameter(torch.empty(out_channels).uniform_(-bound, bound)) if bias else None

    def kernel(self) -> torch.Tensor:
        """The full ``[out, in / groups, k, k]`` kernel."""
        return self.weight[..., self.orbit_index]

    def padding_for(self, size: int) -> int:
        """Zero padding on both sides of an axis of ``size`` pixels (see the class docstring)."""
        return centred_padding(size, self.kernel_size, self.stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pad_h, pad_w = self.padding_for(x.shape[-2]), self.padding_for(x.shape[-1])
        return F.conv2d(x, self.kernel(), self.bias, stride=self.stride, padding=(pad_h, pad_w), groups=self.groups)

    def extra_repr(self) -> str:
        return (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, stride={self.stride}, "
                f"groups={self.groups}, bias={self.bias is not None}, symmetry={self.symmetry_name}")


def centred_padding(size: int, kernel_size: int, stride: int) -> int:
    """:meth:`OrbitSharedConv2d.padding_for`: ``k // 2``, or ``k // 2 - 1`` where that keeps a stride-2
    output on an odd size odd."""
    half = kernel_size // 2
    if stride == 1 or size % 2 == 0 or half == 0:
        return half
    return half if ((size + 2 * half - kernel_size) // 2 + 1) % 2 == 1 else half - 1


def orbit_count(kernel_size: int, symmetry: Group) -> int:
    """Orbits of the taps of an odd ``k x k`` kernel under ``symmetry``'s exact elements (what
    :func:`kernel_orbits` numbers), without building it: ``r (r + 1) + 1`` under the quarter turns,
    ``(r + 1)(r + 2) / 2`` with the mirrors too (``r = k // 2``)."""
    r = kernel_size // 2
    mirrored = any(g.flip for g in symmetry.exact_elements)
    return (r + 1) * (r + 2) // 2 if mirrored else r * (r + 1) + 1


def spatial_conv_cost(in_channels: int, out_channels: int, kernel_size: int, size: int, *, stride: int = 1,
                      groups: int = 1, bias: bool = True, symmetry: Group | None = None) -> tuple[ModelCost, int]:
    """:func:`spatial_conv`'s cost on a ``size`` grid (its kernel and output) and the side of its output."""
    taps = kernel_size**2 if symmetry is None else orbit_count(kernel_size, symmetry)
    padding = kernel_size // 2 if symmetry is None else centred_padding(size, kernel_size, stride)
    out = conv_out(size, kernel_size, stride, padding)
    parameters = out_channels * (in_channels // groups) * taps + (out_channels if bias else 0)
    expanded = 0 if symmetry is None else out_channels * (in_channels // groups) * kernel_size**2  # kernel()
    floats = out_channels * out**2 + expanded
    return ModelCost(parameters, floats), out


def stage_cost(in_channels: int, config: StageConfig, size: int, symmetry: Group | None = None
               ) -> tuple[ModelCost, int]:
    """:class:`CvTStage`'s cost on a ``size`` grid and the side of its token grid: the embedding, and per
    block the projections, the ``heads x N x N_kv`` attention weights, the feed-forward and the norms."""
    dim, inner, ratio = config.dim, config.heads * config.head_dim, config.mlp_ratio
    total, side = spatial_conv_cost(in_channels, dim, config.embed_kernel, size, stride=config.embed_stride,
                                    symmetry=symmetry)
    total += ModelCost(2 * dim, dim * side**2)
    depthwise, kv_side = spatial_conv_cost(dim, dim, config.proj_kernel, side, stride=config.kv_stride, groups=dim,
                                           bias=False, symmetry=symmetry)
    query_depthwise, _ = spatial_conv_cost(dim, dim, config.proj_kernel, side, groups=dim, bias=False,
                                           symmetry=symmetry)
    n, n_kv = side**2, kv_side**2
    parameters = (4 * dim + query_depthwise.parameters + 2 * dim + dim * inner + depthwise.parameters + 2 * dim
                  + 2 * dim * inner + inner * dim + dim + 2 * dim * dim * ratio + dim * ratio + dim)
    floats = (query_depthwise.activation_floats + depthwise.activation_floats + dim * (n + n_kv) + inner * n
              + 2 * inner * n_kv + 3 * config.heads * n * n_kv + 2 * inner * n + n * dim * (6 + 2 * ratio))
    return total + ModelCost(config.depth * parameters, config.depth * floats), side


def head_cost(dim: int, hidden: int, num_classes: int) -> ModelCost:
    """:class:`ClassifierHead`'s cost: mean pool, Linear, BatchNorm1d, ELU, Linear."""
    return ModelCost(dim * hidden + hidden + 2 * hidden + hidden * num_classes + num_classes,
                     dim + 3 * hidden + num_classes)


def spatial_conv(in_channels: int, out_channels: int, kernel_size: int, *, stride: int = 1, groups: int = 1,
                 bias: bool = True, symmetry: Group | None = None) -> nn.Module:
    """Every ``k x k`` convolution of the CvT blocks: ``nn.Conv2d`` with padding ``k // 2``, or a
    :class:`OrbitSharedConv2d` when ``symmetry`` is given."""
    if symmetry is None:
        return nn.Conv2d(in_channels, out_channels, kernel_size, stride=stride, padding=kernel_size // 2,
                         groups=groups, bias=bias)
    return OrbitSharedConv2d(in_channels, out_channels, kernel_size, symmetry, stride=stride, groups=groups, bias=bias)


class ChannelLayerNorm(nn.LayerNorm):
    """LayerNorm over the channels of every token of a grid ``[B, C, H, W]`` (2C parameters)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x.movedim(1, -1)).movedim(-1, 1)


class DepthwiseSeparableProjection(nn.Sequential):
    """CvT's convolutional projection ``[B, C, H, W] -> [B, C_out, H', W']``: depthwise ``k x k``
    conv (stride ``stride``, no bias) -> BatchNorm2d -> pointwise 1x1 conv (no bias)."""

    def __init__(self, dim: int, out_dim: int, kernel_size: int, stride: int, symmetry: Group | None = None):
        super().__init__(
            spatial_conv(dim, dim, kernel_size, stride=stride, groups=dim, bias=False, symmetry=symmetry),
            nn.BatchNorm2d(dim),
            nn.Conv2d(dim, out_dim, 1, bias=False),
        )


class ConvAttention(AttentionRecorder, nn.Module):
    """Multi-head attention of CvT: ``[B, C, H, W] -> [B, C, H, W]``.

    Queries on the ``H x W`` grid (stride 1), keys and values on the coarser ``H' x W'`` grid of
    a stride-``kv_stride`` projection; every query attends to every key
    (``softmax(Q K^T / sqrt(head_dim))``, no positional encoding). The fast path is
    ``F.scaled_dot_product_attention``; with ``capture_attention`` set the weights are computed
    explicitly and recorded as ``[B, heads, H*W, H'*W']`` (token ``i`` at ``divmod(i, W)``).
    """

    def __init__(self, dim: int, heads: int, head_dim: int = 64, proj_kernel: int = 3, kv_stride: int = 2,
                 symmetry: Group | None = None):
        super().__init__()
        inner = heads * head_dim
        self.heads, self.head_dim = heads, head_dim
        self.to_q = DepthwiseSeparableProjection(dim, inner, proj_kernel, 1, symmetry)
        self.to_kv = DepthwiseSeparableProjection(dim, 2 * inner, proj_kernel, kv_stride, symmetry)
        self.to_out = nn.Conv2d(inner, dim, 1)

    def _split_heads(self, t: torch.Tensor) -> torch.Tensor:
        b, _, h, w = t.shape  # channel c = head * head_dim + d
        return t.reshape(b, self.heads, self.head_dim, h * w).transpose(-1, -2)  # [B, heads, N, head_dim]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        q = self.to_q(x)
        k, v = self.to_kv(x).chunk(2, dim=1)
        b, _, height, width = q.shape
        key_grid = k.shape[-2:]
        q, k, v = map(self._split_heads, (q, k, v))
        if self.capture_attention:
            weights = torch.softmax(q @ k.transpose(-1, -2) * self.head_dim**-0.5, dim=-1)  # [B, heads, Nq, Nk]
            self.record_attention(weights, (height, width), key_grid)
            out = weights @ v
        else:
            out = F.scaled_dot_product_attention(q, k, v)
        out = out.transpose(-1, -2).reshape(b, self.heads * self.head_dim, height, width)
        return self.to_out(out)


class FeedForward(nn.Sequential):
    """Token-wise MLP ``[B, C, H, W] -> [B, C, H, W]``: 1x1 conv to ``C * mlp_ratio``, GELU, 1x1 conv back."""

    def __init__(self, dim: int, mlp_ratio: int):
        super().__init__(nn.Conv2d(dim, dim * mlp_ratio, 1), nn.GELU(), nn.Conv2d(dim * mlp_ratio, dim, 1))


class TransformerBlock(nn.Module):
    """``x + attention(norm(x))``, then ``x + mlp(norm(x))`` on ``[B, C, H, W]``."""

    def __init__(self, dim: int, heads: int, head_dim: int, mlp_ratio: int, proj_kernel: int, kv_stride: int,
                 symmetry: Group | None = None):
        super().__init__()
        self.attention_norm = ChannelLayerNorm(dim)
        self.attention = ConvAttention(dim, heads, head_dim, proj_kernel, kv_stride, symmetry)
        self.mlp_norm = ChannelLayerNorm(dim)
        self.mlp = FeedForward(dim, mlp_ratio)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attention(self.attention_norm(x))
        return x + self.mlp(self.mlp_norm(x))


class CvTStage(nn.Module):
    """One CvT stage ``[B, C_in, H, W] -> [B, dim, H', W']`` (``H' ~ H / embed_stride``): token
    embedding conv + LayerNorm, ``depth`` transformer blocks, and a ``Tap("map")`` on the result."""

    def __init__(self, in_channels: int, config: StageConfig, symmetry: Group | None = None):
        super().__init__()
        self.config = config
        self.embed = spatial_conv(in_channels, config.dim, config.embed_kernel, stride=config.embed_stride,
                                  symmetry=symmetry)
        self.embed_norm = ChannelLayerNorm(config.dim)
        self.blocks = nn.Sequential(*(
            TransformerBlock(config.dim, config.heads, config.head_dim, config.mlp_ratio, config.proj_kernel,
                             config.kv_stride, symmetry)
            for _ in range(config.depth)
        ))
        self.tokens = Tap("map")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.tokens(self.blocks(self.embed_norm(self.embed(x))))


class ClassifierHead(nn.Module):
    """``[B, C, H, W] -> [B, classes]``: global average pool -> Linear(C, hidden) -> BatchNorm1d
    -> ELU -> ``Tap("features")`` ``[B, hidden]`` -> Linear(hidden, classes).

    The average pool makes the head invariant to any permutation of the tokens. (BatchNorm1d in
    train mode needs batches of 2 or more.)"""

    def __init__(self, dim: int, hidden: int, num_classes: int):
        super().__init__()
        self.hidden = nn.Sequential(nn.Linear(dim, hidden), nn.BatchNorm1d(hidden), nn.ELU())
        self.features = Tap("features")
        self.logits = nn.Linear(hidden, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.logits(self.features(self.hidden(x.mean(dim=(-2, -1)))))
