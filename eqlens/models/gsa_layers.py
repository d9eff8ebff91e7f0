"""Layers of GSA-Nets (group-equivariant stand-alone self-attention), exact and memory-lean.

Romero & Cordonnier's observation: the only geometric part of self-attention is its positional
encoding, so acting with the group on the *relative positions* (and, between group layers, on the
*relative group elements*) makes attention equivariant. Two layers:

- lifting self-attention  ``[B, C, H, W] -> [B, C', |G|, H, W]``: output element ``h`` attends over
  the pixels of a ``k x k`` window (or the whole image) with scores
  ``q_i . (k_j + PE(h^-1 (x_j - x_i))) / sqrt(d)``;
- group self-attention ``[B, C, |G|, H, W] -> [B, C', |G|, H, W]``: output element ``h`` attends over
  (group element ``h~``, pixel ``j``) of the keys with scores
  ``q_hi . (k_h~j + PE(h^-1 (x_j - x_i)) + E[h^-1 h~]) / sqrt(d)``.

Both satisfy ``L(g . f) = rho(g) L(f)`` with ``(rho(g) F)[h](x) = F[g^-1 h](g^-1 x)`` (for C_N a
rotation by ``k`` steps rolls the group axis by ``+k``): substituting ``x = g x'`` and ``h~ = g h~'``
turns ``h^-1 (x_j - x_i)`` into ``(g^-1 h)^-1 (x_j' - x_i')`` and ``h^-1 h~`` into ``(g^-1 h)^-1 h~'``.
The official code builds these relative positions wrongly (error 1e-2); here they are built straight
from the formula, so every exact element (90-deg multiples, flips) commutes to float noise on any
square grid. Finer rotations (45 deg in C8) act on the continuous positions fed to the row/column
MLPs, so no kernel is ever interpolated.

Memory: the score tensor of a group layer is ``[B, heads, |G|, |G|, k*k, H*W]``. It is never built
whole: scores are computed one output element ``h`` at a time (``|G|`` times smaller), the
positional term is a ``[heads, |G|, d, |G| k k]`` table broadcast over pixels, and during training
each chunk runs under ``torch.utils.checkpoint`` so its scores are recomputed in the backward
instead of stored. What remains is the ``k x k`` unfolded keys and values ``[B, C, |G| k k, H W]``.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint

from ..groups import Group, GroupElement, act_on_image
from .cost import ModelCost
from .inspection import AttentionRecorder


def act_on_offsets(g: GroupElement, offsets: torch.Tensor) -> torch.Tensor:
    """``g . p`` for planar offsets ``p = (du, dv)`` ``[..., 2]``: ``du`` along columns (right),
    ``dv`` along rows (down), in pixels.

    The same map as :func:`eqlens.groups.act_on_image`: mirror ``du -> -du`` first, then rotate
    counter-clockwise as displayed, so a rotation by +90 deg sends ``(du, dv)`` to ``(dv, -du)``.
    Computed in float64; for exact elements the result is rounded, so integer offsets land exactly
    on the grid."""
    p = offsets.to(torch.float64)
    du, dv = p[..., 0], p[..., 1]
    if g.flip:
        du = -du
    cos, sin = math.cos(g.angle), math.sin(g.angle)
    out = torch.stack((du * cos + dv * sin, -du * sin + dv * cos), dim=-1)
    return torch.round(out) if g.is_exact_on_pixels else out


def window_offsets(kernel_size: int) -> torch.Tensor:
    """``[k*k, 2]`` offsets ``(du, dv)`` of a ``k x k`` window in ``F.unfold`` order (row-major,
    ``index = (dv + r) * k + (du + r)``, ``r = k // 2``)."""
    r = kernel_size // 2
    dv, du = torch.meshgrid(torch.arange(-r, r + 1), torch.arange(-r, r + 1), indexing="ij")
    return torch.stack((du.reshape(-1), dv.reshape(-1)), dim=-1)


def offsets_seen_by_each_element(group: Group, offsets: torch.Tensor) -> torch.Tensor:
    """``[|G|, M, 2]`` float64: row ``h`` holds ``h^-1 . offsets`` (what output element ``h`` feeds
    to the positional encoding)."""
    return torch.stack([act_on_offsets(group.inverse(h), offsets) for h in group.elements])


def relative_element_index(group: Group) -> torch.Tensor:
    """``[|G|, |G|]`` long: entry ``(h, h~)`` is the index of ``h^-1 h~``."""
    return torch.tensor(
        [[group.compose(group.inverse(h), k).index for k in group.elements] for h in group.elements]
    )


class RelativePositionEncoding(nn.Module):
    """GSA-Nets' positional encoding of a continuous offset ``(du, dv)`` ``[..., 2]`` -> ``[..., dim]``:
    a row MLP of ``dv`` and a column MLP of ``du``, concatenated (``dim/2`` channels each).

    Two 1-D MLPs rather than a lookup table, so offsets rotated by angles finer than 90 deg (off
    the grid) still get an encoding. ``scale`` maps the offsets to about [-1, 1]."""

    def __init__(self, dim: int, hidden: int = 16):
        super().__init__()
        if dim % 2:
            raise ValueError(f"the positional encoding needs an even width, got {dim}")
        self.row = self._mlp(hidden, dim // 2)
        self.col = self._mlp(hidden, dim // 2)

    @staticmethod
    def _mlp(hidden: int, out: int) -> nn.Sequential:
        return nn.Sequential(nn.Linear(1, hidden), nn.SiLU(), nn.Linear(hidden, hidden), nn.SiLU(),
                             nn.Linear(hidden, out))

    def forward(self, offsets: torch.Tensor, scale: float) -> torch.Tensor:
        p = (offsets / scale).to(self.row[0].weight.dtype)
        return torch.cat((self.row(p[..., 1:2]), self.col(p[..., 0:1])), dim=-1)


def _attend(q, k_win, v_win, pos, bias, scale: float):
    """Attention of one output group element.

    ``q [B, n, P, d]``; ``k_win [B, n, P, d, M]`` and ``v_win [B, n, P, M, d]`` (the ``M = |G_k| k k``
    keys each pixel sees); ``pos [n, d, M]``; ``bias [P, M]`` (``-inf`` outside the image).
    Returns ``out [B, n, P, d]`` and the weights ``[B, n, P, M]`` (rows sum to 1)."""
    logits = torch.matmul(q.unsqueeze(-2), k_win).squeeze(-2)  # content term, [B, n, P, M]
    logits = logits + torch.matmul(q, pos.unsqueeze(0))  # position term: the table broadcast over pixels
    weights = torch.softmax(logits * scale + bias, dim=-1)
    return torch.matmul(weights.unsqueeze(-2), v_win).squeeze(-2), weights


def _attend_output(q, k_win, v_win, pos, bias, scale: float):
    return _attend(q, k_win, v_win, pos, bias, scale)[0]


class _WindowGroupAttention(AttentionRecorder, nn.Module):
    """Shared machinery of the lifting and group self-attention layers.

    Input ``[B, C_in, G_k, H, W]`` (``G_k = 1`` for the lifting layer), output
    ``[B, C_out, |G|, H, W]``. Subclasses give the positional table ``[|G|, G_k, M', C_out]``
    (``M' = k k``) through :meth:`positional_table`. ``kernel_size=None`` attends globally (a
    window of ``2 max(H, W) - 1`` covers every pixel from every query, outside pixels masked)."""

    def __init__(self, group: Group, in_channels: int, out_channels: int, heads: int,
                 kernel_size: int | None, pos_hidden: int, use_checkpoint: bool):
        super().__init__()
        if out_channels % heads:
            raise ValueError(f"{out_channels} channels do not split into {heads} heads")
        if kernel_size is not None and (kernel_size < 1 or kernel_size % 2 == 0):
            raise ValueError(f"the attention window must be odd (centred on the query), got {kernel_size}")
        self.group = group
        self.heads = heads
        self.out_channels = out_channels
        self.kernel_size = kernel_size
        self.use_checkpoint = use_checkpoint
        self.query = nn.Linear(in_channels, out_channels, bias=False)
        self.key_value = nn.Linear(in_channels, 2 * out_channels, bias=False)
        self.position = RelativePositionEncoding(out_channels, pos_hidden)
        self.proj = nn.Linear(out_channels, out_channels)

    def window(self, height: int, width: int) -> int:
        return self.kernel_size if self.kernel_size is not None else 2 * max(height, width) - 1

    def positional_table(self, offsets: torch.Tensor, scale: float) -> torch.Tensor:
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, _, key_group, height, width = x.shape
        n, c, order = self.heads, self.out_channels, self.group.order
        d, pixels, k = c // n, height * width, self.window(height, width)
        window_size = k * k
        keys_seen = key_group * window_size

        channels_last = x.movedim(1, -1)  # [B, G_k, H, W, C_in]
        q = self.query(channels_last).reshape(batch, key_group, pixels, n, d).permute(0, 3, 1, 2, 4)
        kv = self.key_value(channels_last).permute(0, 4, 1, 2, 3).reshape(batch, 2 * c * key_group, height, width)
        kv = F.unfold(kv, k, padding=k // 2).view(batch, 2, n, d, key_group, window_size, pixels)
        # contiguous once here: as strided views, every chunk's matmul would copy them again
        k_win = kv[:, 0].permute(0, 1, 5, 2, 3, 4).reshape(batch, n, pixels, d, keys_seen).contiguous()
        v_win = kv[:, 1].permute(0, 1, 5, 3, 4, 2).reshape(batch, n, pixels, keys_seen, d).contiguous()

        offsets = window_offsets(k).to(x.device)
        table = self.positional_table(offsets, scale=max(k // 2, 1))  # [|G|, G_k, k k, C]
        pos = table.view(order, key_group, window_size, n, d).permute(3, 0, 4, 1, 2)
        pos = pos.reshape(n, order, d, keys_seen).to(x.dtype)
        bias = self._outside_image_bias(height, width, k, key_group, x)

        outputs, weights = [], []
        checkpointing = self.use_checkpoint and torch.is_grad_enabled() and not self.capture_attention
        for h in range(order):
            q_h = q[:, :, h if key_group > 1 else 0]  # the lifting layer's queries do not depend on h
            args = (q_h, k_win, v_win, pos[:, h], bias, d**-0.5)
            if self.capture_attention:
                out_h, w_h = _attend(*args)
                weights.append(w_h.detach())
            elif checkpointing:
                out_h = checkpoint(_attend_output, *args, use_reentrant=False)
            else:
                out_h = _attend_output(*args)
            outputs.append(out_h)
        if self.capture_attention:
            self._record(weights, height, width, k, key_group)

        out = torch.stack(outputs, dim=2)  # [B, n, |G|, P, d]
        out = self.proj(out.permute(0, 2, 3, 1, 4).reshape(batch, order, pixels, c))
        return out.permute(0, 3, 1, 2).reshape(batch, c, order, height, width)

    @staticmethod
    def _outside_image_bias(height, width, k, key_group, like) -> torch.Tensor:
        """``[P, G_k k k]``: 0 for window keys inside the image, ``-inf`` for the padding."""
        ones = torch.ones(1, 1, height, width, device=like.device, dtype=like.dtype)
        inside = F.unfold(ones, k, padding=k // 2)[0].T > 0.5  # [P, k k]
        bias = torch.zeros(inside.shape, device=like.device, dtype=like.dtype).masked_fill(~inside, float("-inf"))
        return bias.repeat(1, key_group)

    def _record(self, weights: list[torch.Tensor], height: int, width: int, k: int, key_group: int) -> None:
        """Scatter the window weights into a dense ``[B, heads, |G| H W, G_k H W]`` map (token
        ``(g * H + y) * W + x``); keys outside the window get 0, so rows still sum to 1."""
        w = torch.stack(weights, dim=2)  # [B, n, |G|, P, G_k k k]
        batch, n, order, pixels, _ = w.shape
        w = w.view(batch, n, order, pixels, key_group, k * k)
        token = torch.arange(pixels, device=w.device)
        ys, xs = token // width, token % width
        offsets = window_offsets(k).to(w.device)
        key_y, key_x = ys[:, None] + offsets[None, :, 1], xs[:, None] + offsets[None, :, 0]
        inside = (key_y >= 0) & (key_y < height) & (key_x >= 0) & (key_x < width)
        key_index = torch.where(inside, key_y * width + key_x, torch.zeros_like(key_y))[:, None]  # [P, 1, k k]
        dense = torch.zeros(batch, n, order, pixels, key_group, pixels, device=w.device, dtype=w.dtype)
        dense.scatter_add_(-1, key_index.expand_as(w), w * inside[:, None].to(w.dtype))
        self.record_attention(
            dense.reshape(batch, n, order * pixels, key_group * pixels),
            (height, width), (height, width), query_group=order, key_group=key_group,
        )


class LiftingSelfAttention(_WindowGroupAttention):
    """``[B, C_in, H, W] -> [B, C_out, |G|, H, W]``: one attention per group element ``h`` over a
    ``k x k`` window (``kernel_size=None``: global), its positions acted on by ``h^-1``.

    A rotation/flip ``g`` of the input moves every map by ``g`` and permutes the group axis by the
    regular representation (for C_N: rotating by ``r`` steps rolls the axis by ``r``). Attention
    weights are recorded as ``[B, heads, |G| H W, H W]`` (``query_group=|G|``)."""

    def __init__(self, group: Group, in_channels: int, out_channels: int, heads: int = 2,
                 kernel_size: int | None = 5, pos_hidden: int = 16, use_checkpoint: bool = True):
        super().__init__(group, in_channels, out_channels, heads, kernel_size, pos_hidden, use_checkpoint)

    def positional_table(self, offsets, scale):
        seen = offsets_seen_by_each_element(self.group, offsets)  # [|G|, k k, 2]
        return self.position(seen, scale)[:, None]  # [|G|, 1, k k, C]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 4:
            raise ValueError(f"lifting self-attention takes [B, C, H, W], got {tuple(x.shape)}")
        return super().forward(x[:, :, None])


class GroupSelfAttention(_WindowGroupAttention):
    """``[B, C_in, |G|, H, W] -> [B, C_out, |G|, H, W]``: output element ``h`` attends over every
    (group element ``h~``, window pixel ``j``) of the keys, with the encoding of the rotated offset
    ``h^-1 (x_j - x_i)`` plus a learned embedding of the relative element ``h^-1 h~``.

    Equivariant: ``L(rho(g) F) = rho(g) L(F)`` exactly for every exact element ``g``. Attention
    weights are recorded as ``[B, heads, |G| H W, |G| H W]`` (both groups ``|G|``)."""

    def __init__(self, group: Group, in_channels: int, out_channels: int, heads: int = 2,
                 kernel_size: int | None = 5, pos_hidden: int = 16, use_checkpoint: bool = True):
        super().__init__(group, in_channels, out_channels, heads, kernel_size, pos_hidden, use_checkpoint)
        self.element_embedding = nn.Parameter(torch.randn(group.order, out_channels) * 0.1)
        self.register_buffer("relative_elements", relative_element_index(group), persistent=False)

    def positional_table(self, offsets, scale):
        seen = offsets_seen_by_each_element(self.group, offsets)  # [|G|, k k, 2]
        spatial = self.position(seen, scale)[:, None]  # [|G|, 1, k k, C]
        elements = self.element_embedding[self.relative_elements][:, :, None]  # [|G|, |G|, 1, C]
        return spatial + elements

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 5 or x.shape[2] != self.group.order:
            raise ValueError(f"group self-attention takes [B, C, |G|={self.group.order}, H, W], got {tuple(x.shape)}")
        return super().forward(x)


class GroupLayerNorm(nn.Module):
    """LayerNorm over the channels of ``[B, C, |G|, H, W]``, separately at every (element, pixel):
    a pointwise map, so it commutes with every permutation of the group axis and of the pixels."""

    def __init__(self, channels: int):
        super().__init__()
        self.norm = nn.LayerNorm(channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(x.movedim(1, -1)).movedim(-1, 1)


class PointwiseFeedForward(nn.Module):
    """Channel MLP ``C -> expansion C -> C`` applied at every (element, pixel) of ``[B, C, |G|, H, W]``
    (equivariant for the same reason as :class:`GroupLayerNorm`)."""

    def __init__(self, channels: int, expansion: int = 2):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(channels, expansion * channels), nn.GELU(),
                                 nn.Linear(expansion * channels, channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x.movedim(1, -1)).movedim(-1, 1)


class GroupAttentionBlock(nn.Module):
    """Pre-norm transformer block on regular fields ``[B, C, |G|, H, W]``:
    ``x + GSA(norm(x))`` then ``x + FF(norm(x))``. Every part is equivariant, so the block is."""

    def __init__(self, group: Group, channels: int, heads: int = 2, kernel_size: int | None = 5,
                 expansion: int = 2, pos_hidden: int = 16, use_checkpoint: bool = True):
        super().__init__()
        self.norm_attention = GroupLayerNorm(channels)
        self.attention = GroupSelfAttention(group, channels, channels, heads, kernel_size, pos_hidden, use_checkpoint)
        self.norm_ff = GroupLayerNorm(channels)
        self.ff = PointwiseFeedForward(channels, expansion)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attention(self.norm_attention(x))
        return x + self.ff(self.norm_ff(x))


def stem_padding(size: int, stride: int) -> int:
    """:class:`GroupAveragedConv2d`'s zero padding on each side of an axis of ``size`` pixels."""
    tokens = -(-size // stride)
    if (tokens * stride - size) % 2:
        tokens += 1  # odd stride: one more token flips the parity of the leftover
    return (tokens * stride - size) // 2 + 1


def attention_cost(group_order: int, in_channels: int, channels: int, heads: int, kernel_size: int | None,
                   key_group: int, side: int, pos_hidden: int = 16) -> ModelCost:
    """A :class:`_WindowGroupAttention` layer on a ``side x side`` grid (``key_group``: 1 for the lifting layer,
    |G| for a group layer): its projections, the unfolded keys and values ``[C, G_k k k, P]``, and for each of
    the |G| output elements its ``heads x P x G_k k k`` scores and weights."""
    pixels, k = side**2, kernel_size if kernel_size is not None else 2 * side - 1
    keys = key_group * k * k
    half = channels // 2
    mlp = 2 * pos_hidden + pos_hidden**2 + pos_hidden + pos_hidden * half + half
    parameters = 3 * in_channels * channels + 2 * mlp + channels**2 + channels
    parameters += group_order * channels if key_group > 1 else 0  # the relative-element embedding
    floats = (6 * channels * key_group * pixels + 2 * channels * key_group * k * k * pixels
              + 2 * channels * keys * pixels + 2 * group_order * keys * channels + 3 * pixels * keys
              + group_order * (6 * heads * pixels * keys + channels * pixels) + 4 * group_order * channels * pixels)
    return ModelCost(parameters, floats)


class GroupAveragedConv2d(nn.Module):
    """Strided convolution ``[B, C_in, H, W] -> [B, C_out, T, T']`` whose kernels are averaged over
    the group's exact elements (90-deg rotations, and flips for D_N), so it commutes with them: a free
    kernel projected onto the invariant ones at every call (compare
    :class:`eqlens.models.cvt_layers.OrbitSharedConv2d`, whose parameters are the orbit values themselves).

    The stride ``s`` is odd and the input is zero-padded symmetrically so that the windows tile the
    frame symmetrically about its centre: a 90-deg rotation or a flip of the input then maps the
    output grid onto itself, for odd and even sizes alike. Kernel size ``s + 2`` (overlapping
    windows); ``T = ceil(H / s)``, plus one where needed to make the padding even."""

    def __init__(self, group: Group, in_channels: int, out_channels: int, stride: int):
        super().__init__()
        if stride < 1 or stride % 2 == 0:
            raise ValueError(f"a symmetric strided stem needs an odd stride, got {stride}")
        self.group, self.stride, self.kernel_size = group, stride, stride + 2
        self.weight = nn.Parameter(torch.empty(out_channels, in_channels, self.kernel_size, self.kernel_size))
        self.bias = nn.Parameter(torch.zeros(out_channels))
        nn.init.kaiming_uniform_(self.weight, a=math.sqrt(5))

    def symmetric_weight(self) -> torch.Tensor:
        return torch.stack([act_on_image(self.weight, g) for g in self.group.exact_elements]).mean(0)

    def padding(self, size: int) -> tuple[int, int]:
        """Zero padding on each side of an axis of ``size`` pixels (symmetric)."""
        side = stem_padding(size, self.stride)
        return side, side

    def output_size(self, size: int) -> int:
        return (size + sum(self.padding(size)) - self.kernel_size) // self.stride + 1

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.pad(x, (*self.padding(x.shape[-1]), *self.padding(x.shape[-2])))
        return F.conv2d(x, self.symmetric_weight(), self.bias, stride=self.stride)
