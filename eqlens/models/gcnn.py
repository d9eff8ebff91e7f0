"""``gcnn``: a group CNN written from scratch, the model that teaches (see docs/group_cnn.md).

Follow the group action through the network, for an exact element ``g`` (a multiple of 90 deg,
with or without the mirror; all of C4 and D4, the 90-deg subgroup of C8 and D8)::

    x                 [B, 1, H, W]                  input, moved by g:            g.x
    lift block        [B, C0, |G|, H0, W0]          LiftingConv-BN-ReLU-pool:     rho(g) F0
    group blocks      [B, Ci, |G|, Hi, Wi]          GroupConv-BN-ReLU-pool:       rho(g) Fi
    group pool (max)  [B, Cn, Hn, Wn]               |G| axis gone:                g.m   (moved only)
    spatial mean      [B, Cn]                       plane gone:                   unchanged
    hidden + ReLU     [B, hidden]    (Tap "features")                             unchanged
    linear            [B, classes]   logits                                       unchanged

Each block halves the plane with :class:`CentredMaxPool2d`, whose windows are symmetric about
the centre for both parities (3x3/stride 2 on odd sizes, 2x2/stride 2 on even sizes), so the
network is exactly invariant on every input size >= 16; batch norm shares its statistics over
the group axis (:class:`GroupBatchNorm`), ReLU acts pixel by pixel. Rotations by 45 deg (C8/D8)
are approximate: the kernels are resampled (see :mod:`eqlens.models.group_conv`).

Parameters with the defaults (widths 16-24-32-32, kernels 5 then 3, hidden 64):
~81k at C4, ~160k at C8 and D4 (the group-conv kernels carry one map per input orientation).
"""

from __future__ import annotations

import torch
from torch import nn

from ..groups import Group
from .group_conv import CentredMaxPool2d, GroupBatchNorm, GroupConv, GroupPool, LiftingConv
from .inspection import LensModel, Tap
from .registry import register


class GroupConvBlock(nn.Module):
    """``conv -> GroupBatchNorm -> ReLU -> CentredMaxPool2d -> Tap("group")`` on regular fields.

    ``conv`` is a :class:`LiftingConv` (input ``[B, C, H, W]``) or a :class:`GroupConv` (input
    ``[B, C, |G|, H, W]``); output ``[B, C', |G|, ceil(H/2), ceil(W/2)]``, equivariant:
    ``block(g.x) = rho(g) block(x)``. The tap sees the plain tensor ``[B, C' * |G|, H', W']`` with
    each field's |G| orientation channels contiguous. ``pool=False``: no pooling (a strided ``conv``
    already halved the plane)."""

    def __init__(self, conv: LiftingConv | GroupConv, pool: bool = True):
        super().__init__()
        group_size = conv.group.order
        self.conv = conv
        self.norm = GroupBatchNorm(conv.out_channels, group_size)
        self.relu = nn.ReLU(inplace=True)
        self.pool = CentredMaxPool2d() if pool else nn.Identity()
        self.tap = Tap("group", group_size=group_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        fields = self.pool(self.relu(self.norm(self.conv(x))))  # [B, C', |G|, H', W']
        return self.tap(fields.flatten(1, 2)).unflatten(1, fields.shape[1:3])


class GroupCNN(LensModel):
    """Lifting block, group-conv blocks, group max-pool, spatial mean, two-layer head.

    ``forward(x: [B, 1, H, W]) -> logits [B, num_classes]``, exactly invariant (to float rounding)
    under the group's exact elements. Taps: ``lift.tap`` and ``blocks.<i>.tap`` (kind ``"group"``),
    ``features`` (``[B, hidden]``, before the final linear layer)."""

    def __init__(self, num_classes: int, group: Group, widths: tuple[int, ...] = (16, 24, 32, 32),
                 lift_kernel_size: int = 5, kernel_size: int = 3, hidden: int = 64, group_pool: str = "max",
                 lift_stride: int = 1):
        super().__init__()
        if len(widths) < 1:
            raise ValueError("gcnn needs at least one width (the lifting layer's)")
        self.group = group
        self.invariant = True
        # Convolutions are followed by batch norm, which would cancel a bias.
        # lift_stride=2: the lifting kernel reads native pixels and samples every other one, in place
        # of the block's max-pool (odd input sizes only: the stride-2 grid is centred there).
        self.lift = GroupConvBlock(LiftingConv(group, 1, widths[0], lift_kernel_size, bias=False, stride=lift_stride),
                                   pool=lift_stride == 1)
        self.blocks = nn.Sequential(*(
            GroupConvBlock(GroupConv(group, c_in, c_out, kernel_size, bias=False))
            for c_in, c_out in zip(widths[:-1], widths[1:], strict=True)
        ))
        self.group_pool = GroupPool(group_pool)
        self.hidden = nn.Sequential(nn.Linear(widths[-1], hidden), nn.ReLU(inplace=True))
        self.features = Tap("features")
        self.head = nn.Linear(hidden, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        fields = self.blocks(self.lift(x))  # [B, C, |G|, H', W']
        pooled = self.group_pool(fields).mean(dim=(-2, -1))  # [B, C]: invariant
        return self.head(self.features(self.hidden(pooled)))

    def lifting_kernels(self) -> torch.Tensor:
        """The lifting kernel and its moved copies, ``[|G|, C0, 1, k, k]`` (copy ``g`` is ``g.psi``,
        copy 0 the kernel itself), detached: what the app's Learn page draws."""
        return self.lift.conv.transformed_kernels().detach()


@register("gcnn", description="group CNN from scratch (lifting + group convs, exact on 90-deg rotations/flips)",
          uses_group=True, invariant=True, odd_size_for_exactness=False)
def build_gcnn(num_classes: int, group: Group, image_size: int, widths=(16, 24, 32, 32), lift_kernel_size: int = 5,
               kernel_size: int = 3, hidden: int = 64, group_pool: str = "max", lift_stride: int = 1) -> GroupCNN:
    if lift_stride == 2 and image_size % 2 == 0:
        raise ValueError(f"gcnn with lift_stride 2 needs an odd image size (a centred stride-2 grid), got {image_size}")
    return GroupCNN(num_classes, group, tuple(widths), lift_kernel_size, kernel_size, hidden, group_pool, lift_stride)
