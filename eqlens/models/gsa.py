"""GSA-Net: a group-equivariant stand-alone self-attention classifier, exactly invariant.

    [B, 1, H, W]
    -> symmetrised strided conv (odd stride s, symmetric padding),
       GroupNorm(1) over channels and space, GELU                          [B, C_s, T, T]   (map tap)
    -> lifting self-attention                                                [B, C, |G|, T, T] (group tap)
    -> ``depth`` x (group self-attention + pointwise feed-forward), residual [B, C, |G|, T, T] (group taps)
    -> mean over space, max over the group, BatchNorm1d                    [B, C]           (features tap)
    -> linear                                                               [B, classes]

A rotation by ``r`` x 90 deg (or a flip, for D_N) of the input moves every group tap by the same
map and permutes its group axis by the regular representation (rolls it by ``r * N / 4`` for C_N);
the stem's maps just move; the pooled features and the logits do not change. This holds to float
noise for every square input size (odd or even): the stem's windows tile the frame symmetrically
and the attention windows are centred on their queries. Elements finer than 90 deg (45 deg in C8)
act through the positional encodings only and are not exact on a pixel grid.

The stem stride defaults to the smallest odd ``s`` with ``ceil(image_size / s) <= 32`` tokens per
side (64 -> 22 tokens, 129 -> 27). About 23k parameters with the defaults (22.8k for C4, 23.1k for C8).
"""

from __future__ import annotations

import torch
from torch import nn

from ..groups import Group
from .cost import MAX_LAYERS, ModelCost, count, flag, odd
from .gsa_layers import GroupAttentionBlock, GroupAveragedConv2d, LiftingSelfAttention, attention_cost, stem_padding
from .inspection import LensModel, Tap
from .registry import register

MAX_TOKENS_PER_SIDE = 32


def default_stem_stride(image_size: int) -> int:
    """Smallest odd stride that brings ``image_size`` down to at most 32 tokens per side."""
    stride = 1
    while -(-image_size // stride) > MAX_TOKENS_PER_SIDE:
        stride += 2
    return stride


class GSANet(LensModel):
    """See the module docstring. ``kernel_size=None`` makes every attention layer global."""

    invariant = True

    def __init__(self, num_classes: int, group: Group, image_size: int, width: int = 32, heads: int = 4,
                 depth: int = 2, kernel_size: int | None = 5, stem_channels: int = 8, stem_stride: int | None = None,
                 expansion: int = 2, use_checkpoint: bool = True):
        super().__init__()
        self.group = group
        order = group.order
        self.stem = GroupAveragedConv2d(group, 1, stem_channels, stem_stride or default_stem_stride(image_size))
        # the min-max input is mostly ~0 sky and the symmetrised kernels are small, so the raw stem
        # output is ~1e-2 and the attention above it starts uniform, its output a constant bias;
        # normalising over channels and space per image (statistics a rotation leaves alone) fixes the scale.
        self.stem_norm = nn.GroupNorm(1, stem_channels)
        self.stem_act = nn.GELU()
        self.stem_tap = Tap("map")
        self.lift = LiftingSelfAttention(group, stem_channels, width, heads, kernel_size, use_checkpoint=use_checkpoint)
        self.lift_tap = Tap("group", group_size=order)
        self.blocks = nn.ModuleList(
            GroupAttentionBlock(group, width, heads, kernel_size, expansion, use_checkpoint=use_checkpoint)
            for _ in range(depth)
        )
        self.block_taps = nn.ModuleList(Tap("group", group_size=order) for _ in range(depth))
        self.norm = nn.BatchNorm1d(width)
        self.features = Tap("features")
        self.head = nn.Linear(width, num_classes)

    @staticmethod
    def _tapped(tap: Tap, fields: torch.Tensor) -> torch.Tensor:
        """Pass ``[B, C, |G|, H, W]`` through a tap as the plain ``[B, C |G|, H, W]`` it promises."""
        return tap(fields.flatten(1, 2)).unflatten(1, fields.shape[1:3])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 4 or x.shape[1] != 1:
            raise ValueError(f"GSANet takes [B, 1, H, W] images, got {tuple(x.shape)}")
        tokens = self.stem_tap(self.stem_act(self.stem_norm(self.stem(x))))
        fields = self._tapped(self.lift_tap, self.lift(tokens))
        for block, tap in zip(self.blocks, self.block_taps, strict=True):
            fields = self._tapped(tap, block(fields))
        # mean over space and max over the group are both invariant to moving the pixels and
        # permuting the group axis. The pooled features are ~97% the same for every lens (biases,
        # sky); a per-position LayerNorm cannot remove that, and training stalled at chance.
        # Normalising each feature across the batch (a function of invariant features, so still
        # invariant) brings the between-lens differences to unit scale. Training needs batches > 1.
        pooled = self.norm(fields.mean(dim=(-2, -1)).amax(dim=-1))  # [B, C]
        return self.head(self.features(pooled))


def gsa_cost(num_classes: int, group: Group, image_size: int, width: int = 32, heads: int = 4, depth: int = 2,
             kernel_size: int | None = 5, stem_channels: int = 8, stem_stride: int | None = None,
             expansion: int = 2, use_checkpoint: bool = True) -> ModelCost:
    """Stem (symmetrised strided conv, GroupNorm, GELU), lifting attention, ``depth`` attention blocks
    (norms, group attention, feed-forward), pooling, BatchNorm1d and head."""
    width, heads, depth = count("width", width), count("heads", heads), count("depth", depth, 0, MAX_LAYERS)
    kernel = None if kernel_size is None else odd("kernel_size", kernel_size)
    stem, expansion = count("stem_channels", stem_channels), count("expansion", expansion)
    stride = default_stem_stride(image_size) if stem_stride is None else odd("stem_stride", stem_stride)
    flag("use_checkpoint", use_checkpoint)
    if width % heads or width % 2:
        raise ValueError(f"width {width} must be even and a multiple of heads {heads}")
    order, pad = group.order, stem_padding(image_size, stride)
    side = (image_size + 2 * pad - stride - 2) // stride + 1
    kernel_taps = stem * (stride + 2) ** 2
    total = ModelCost(kernel_taps + stem + 2 * stem,
                      (image_size + 2 * pad) ** 2 + (len(group.exact_elements) + 1) * kernel_taps + 3 * stem * side**2)
    total += attention_cost(order, stem, width, heads, kernel, 1, side)
    fields = width * order * side**2
    block = attention_cost(order, width, width, heads, kernel, order, side)
    feed_forward = ModelCost(2 * expansion * width**2 + expansion * width + width,
                             (2 * expansion + 1) * fields)
    norms = ModelCost(4 * width, 5 * fields)  # two LayerNorms (each movedim copy and output), one sum each
    total += ModelCost(depth * (block.parameters + feed_forward.parameters + norms.parameters),
                       depth * (block.activation_floats + feed_forward.activation_floats + norms.activation_floats))
    return total + ModelCost(2 * width + width * num_classes + num_classes, width * order + 2 * width + num_classes)


@register(
    "gsa",
    cost=gsa_cost,
    description="GSA-Net: lifting + group self-attention (GSA-Nets, exact relative positions, memory-lean), "
    "exactly invariant under 90-deg rotations (and flips for D_N), ~23k parameters",
    uses_group=True,
    invariant=True,
    odd_size_for_exactness=False,
    min_image_size=16,
)
def build_gsa(num_classes: int, group: Group, image_size: int, width: int = 32, heads: int = 4, depth: int = 2,
              kernel_size: int | None = 5, stem_channels: int = 8, stem_stride: int | None = None,
              expansion: int = 2, use_checkpoint: bool = True) -> GSANet:
    return GSANet(num_classes, group, image_size, width=width, heads=heads, depth=depth, kernel_size=kernel_size,
                  stem_channels=stem_channels, stem_stride=stem_stride, expansion=expansion,
                  use_checkpoint=use_checkpoint)
