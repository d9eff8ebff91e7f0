"""``gcnn``: a group CNN written from scratch, the model that teaches (see docs/group_cnn.md).

Follow the group action through the network, for an exact element ``g`` (a multiple of 90 deg,
with or without the mirror; all of C4 and D4, the 90-deg subgroup of C8 and D8)::

    x                 [B, 1, H, W]                  input, moved by g:            g.x
    lift block        [B, C0, |G|, H0, W0]          LiftingConv-BN-ReLU-pool:     rho(g) F0
    group blocks      [B, Ci, |G|, Hi, Wi]          GroupConv-BN-ReLU-pool:       rho(g) Fi
    group pool (max)  [B, Cn, Hn, Wn]               |G| axis gone:                g.m   (moved only)
    spatial mean      [B, Cn]                       plane gone:                   unchanged
      or ring means   [B, Cn * R]    (radial_bins R) rings about the centre:      unchanged
    hidden + ReLU     [B, hidden]    (Tap "features")                             unchanged
    linear            [B, classes]   logits                                       unchanged

Each block halves the plane with :class:`CentredMaxPool2d`, whose windows are symmetric about
the centre for both parities (3x3/stride 2 on odd sizes, 2x2/stride 2 on even sizes), so the
network is exactly invariant on every input size >= 16; batch norm shares its statistics over
the group axis (:class:`GroupBatchNorm`), ReLU acts pixel by pixel. Rotations by 45 deg (C8/D8)
are approximate: the kernels are resampled (see :mod:`eqlens.models.group_conv`).

``radial_bins R > 0`` replaces the spatial mean by the mean over R rings about the centre
(:class:`RingMeans`): a ring is a set of pixel centres at given distances from the centre, which every
exact element maps onto itself, so the model stays exactly invariant while its head learns *where*
(inside the Einstein ring, on the arcs, outside) a feature fires. A global mean is a fixed mix of the
ring means (weights: the rings' pixel shares), so a global-mean checkpoint loads into a ring model as
the same function (:meth:`GroupCNN.adapt_source`).

``orbit_turns m > 1`` averages the class probabilities over the picture turned by ``k * 360 / (N m)`` deg,
``k = 0 .. m-1`` (N: the group's rotations; C4 and m = 4: 0, 22.5, 45, 67.5 deg), resampled inside the
inscribed disk (:func:`eqlens.groups.rotate`, bilinear, 2x2 supersampled). The logits are then
``log mean_k softmax(f(R_k x))`` (their softmax is that mean). Each turned copy keeps the exact invariance
under the group's exact elements (the resampling grid of a centred square frame is mapped onto itself by
90-deg turns), and together they make the model invariant to the finer turns ``360 / (N m)`` as far as
resampling allows: frame averaging over C_{Nm}, no extra parameters, ``m`` times the forward cost. The
unturned copy runs last, so the taps and attributions read the input's own activations.

Parameters with the defaults (widths 16-24-32-32, kernels 5 then 3, hidden 64):
~81k at C4, ~160k at C8 and D4 (the group-conv kernels carry one map per input orientation).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from ..groups import Group, get_group, rotate
from .cost import ModelCost, choice, conv_out, count, counts, odd
from .group_conv import CentredMaxPool2d, GroupBatchNorm, GroupConv, GroupPool, LiftingConv
from .inspection import LensModel, Tap, eval_mode
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


class RingMeans(nn.Module):
    """``[B, C, H, W] -> [B, C * R]``: each channel's mean over ``R`` rings of pixel centres about the centre
    of the plane (feature ``c * R + r`` is channel ``c`` on ring ``r``, innermost first).

    The distinct centre distances of the ``H x W`` grid, in increasing order, are split into ``R`` runs
    of consecutive distances (as equal in number as they go), so no ring is empty; a plane with fewer
    distinct distances than ``R`` is refused. Every rotation by 90 deg and every mirror of a centred grid
    keeps distances, so ring means are exactly invariant under them."""

    def __init__(self, bins: int):
        super().__init__()
        if bins < 1:
            raise ValueError(f"radial_bins must be at least 1, got {bins}")
        self.bins = int(bins)
        self._cache: dict[tuple[int, int, str], torch.Tensor] = {}

    def weights(self, height: int, width: int, device=None) -> torch.Tensor:
        """``[R, H * W]``: row r averages ring r (1 / its pixel count on its pixels, 0 elsewhere)."""
        key = (height, width, str(device))
        if key not in self._cache:
            v = torch.arange(height, dtype=torch.float64) - (height - 1) / 2
            u = torch.arange(width, dtype=torch.float64) - (width - 1) / 2
            d2 = (v[:, None] ** 2 + u[None, :] ** 2).reshape(-1)  # squared distances: exact on the half grid
            levels = torch.unique(d2)
            if levels.numel() < self.bins:
                raise ValueError(f"a {height}x{width} feature map has {levels.numel()} distinct distances from its "
                                 f"centre, fewer than radial_bins={self.bins}: use fewer bins or a larger input")
            ring_of_level = torch.cat([torch.full((len(chunk),), r) for r, chunk in
                                       enumerate(torch.arange(levels.numel()).tensor_split(self.bins))])
            ring = ring_of_level[torch.searchsorted(levels, d2)]
            member = (ring[None, :] == torch.arange(self.bins)[:, None]).to(torch.float64)
            self._cache[key] = (member / member.sum(1, keepdim=True)).to(torch.float32).to(device)
        return self._cache[key]

    def pixel_shares(self, height: int, width: int) -> torch.Tensor:
        """``[R]``: each ring's share of the plane's pixels (the weights that make ring means a global mean)."""
        w = self.weights(height, width)
        counts = (w > 0).sum(1).to(torch.float64)
        return counts / counts.sum()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        return (x.reshape(b, c, h * w) @ self.weights(h, w, x.device).to(x.dtype).T).reshape(b, c * self.bins)


def orbit_turn_angles(group: Group | str, orbit_turns: int) -> list[float]:
    """The turns (deg) a gcnn with ``orbit_turns = m`` averages over: ``k * 360 / (N m)``, ``k < m`` (N: the
    group's rotations; C4, m = 4: 0, 22.5, 45, 67.5)."""
    step = 360.0 / (get_group(group).order_rotations * int(orbit_turns))
    return [k * step for k in range(int(orbit_turns))]


class GroupCNN(LensModel):
    """Lifting block, group-conv blocks, group max-pool, spatial mean, two-layer head.

    ``forward(x: [B, 1, H, W]) -> logits [B, num_classes]``, exactly invariant (to float rounding)
    under the group's exact elements; with ``orbit_turns > 1`` the logits are ``log mean_k softmax`` over the
    turned copies (module docstring) and :meth:`single_view` gives one view's logits.
    Taps: ``lift.tap`` and ``blocks.<i>.tap`` (kind ``"group"``),
    ``features`` (``[B, hidden]``, before the final linear layer)."""

    def __init__(self, num_classes: int, group: Group, widths: tuple[int, ...] = (16, 24, 32, 32),
                 lift_kernel_size: int = 5, kernel_size: int = 3, hidden: int = 64, group_pool: str = "max",
                 lift_stride: int = 1, radial_bins: int = 0, orbit_turns: int = 1):
        super().__init__()
        if len(widths) < 1:
            raise ValueError("gcnn needs at least one width (the lifting layer's)")
        if int(orbit_turns) < 1:
            raise ValueError(f"orbit_turns must be at least 1 (1: no averaging), got {orbit_turns}")
        self.orbit_turns = int(orbit_turns)
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
        self.rings = RingMeans(radial_bins) if radial_bins else None
        self.hidden = nn.Sequential(nn.Linear(widths[-1] * (radial_bins or 1), hidden), nn.ReLU(inplace=True))
        self.features = Tap("features")
        self.head = nn.Linear(hidden, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.orbit_turns == 1:
            return self.single_view(x)
        turns = self.orbit_turn_angles()
        turned = torch.cat([rotate(x, angle, mask=True, supersample=2) for angle in turns[1:]])  # [(m-1) B, ...]
        others = F.log_softmax(self.single_view(turned), dim=-1).unflatten(0, (len(turns) - 1, x.shape[0]))
        own = F.log_softmax(self.single_view(x), dim=-1)  # last: the taps keep the input's own view
        return torch.logsumexp(torch.cat([own[None], others]), dim=0) - math.log(len(turns))

    def orbit_turn_angles(self) -> list[float]:
        """The turns (deg) whose probabilities :meth:`forward` averages (:func:`orbit_turn_angles`)."""
        return orbit_turn_angles(self.group, self.orbit_turns)

    def single_view(self, x: torch.Tensor) -> torch.Tensor:
        """Logits ``[B, classes]`` of the picture as it is (no orbit averaging)."""
        fields = self.blocks(self.lift(x))  # [B, C, |G|, H', W']
        plane = self.group_pool(fields)  # [B, C, H', W']: moved only
        pooled = plane.mean(dim=(-2, -1)) if self.rings is None else self.rings(plane)  # [B, C or C*R]: invariant
        return self.head(self.features(self.hidden(pooled)))

    def final_plane_size(self, image_size: int) -> tuple[int, int]:
        """``(H', W')`` of the last block's plane for ``image_size`` inputs (one forward of a zero image)."""
        param = next(self.parameters())
        with torch.no_grad(), eval_mode(self):
            plane = self.blocks(self.lift(torch.zeros(1, 1, image_size, image_size, dtype=param.dtype,
                                                      device=param.device)))
        return int(plane.shape[-2]), int(plane.shape[-1])

    def adapt_source(self, source: dict[str, torch.Tensor], image_size: int) -> dict[str, torch.Tensor]:
        """``source`` weights of a global-mean gcnn rewritten for this ring model as the same function.

        The global mean over the plane is ``sum_r share_r * ring_mean_r``, so the first head layer's weight
        ``W [hidden, C]`` becomes ``W' [hidden, C * R]`` with ``W'[:, c * R + r] = W[:, c] * share_r``. Any
        other source (already ring-shaped, or another architecture) is returned unchanged."""
        key = "hidden.0.weight"
        if self.rings is None or key not in source:
            return source
        weight = source[key]
        channels = self.hidden[0].in_features // self.rings.bins
        if weight.dim() != 2 or tuple(weight.shape) != (self.hidden[0].out_features, channels):
            return source
        shares = self.rings.pixel_shares(*self.final_plane_size(image_size)).to(weight.dtype)
        widened = (weight[:, :, None] * shares[None, None, :]).reshape(weight.shape[0], channels * self.rings.bins)
        return {**source, key: widened}

    def lifting_kernels(self) -> torch.Tensor:
        """The lifting kernel and its moved copies, ``[|G|, C0, 1, k, k]`` (copy ``g`` is ``g.psi``,
        copy 0 the kernel itself), detached: what the app's Learn page draws."""
        return self.lift.conv.transformed_kernels().detach()


def _group_block_cost(group_order: int, kernel_numel: int, c_out: int, side: int, pool: bool) -> tuple[ModelCost, int]:
    """A :class:`GroupConvBlock` on a ``side`` plane whose conv kernel holds ``kernel_numel`` values: the conv
    and norm fields and the pooled field (the |G| moved kernels: :func:`gcnn_cost`)."""
    out = -(-side // 2) if pool else side
    fields = c_out * group_order
    floats = 2 * fields * side**2 + (fields * out**2 if pool else 0)
    return ModelCost(kernel_numel + 2 * c_out, floats), out


def gcnn_cost(num_classes: int, group: Group, image_size: int, widths=(16, 24, 32, 32), lift_kernel_size: int = 5,
              kernel_size: int = 3, hidden: int = 64, group_pool: str = "max", lift_stride: int = 1,
              radial_bins: int = 0, orbit_turns: int = 1) -> ModelCost:
    """Lifting block, group blocks, group pool, spatial (or ring) means, hidden layer and head; the forward
    runs ``orbit_turns`` copies of the image."""
    widths = counts("widths", widths)
    lift_k, k = odd("lift_kernel_size", lift_kernel_size), odd("kernel_size", kernel_size)
    hidden = count("hidden", hidden)
    choice("group_pool", group_pool, ("max", "mean"))
    if count("lift_stride", lift_stride, 1, 2) == 2 and image_size % 2 == 0:
        raise ValueError(f"gcnn with lift_stride 2 needs an odd image size (a centred stride-2 grid), got {image_size}")
    bins, turns = count("radial_bins", radial_bins, 0), count("orbit_turns", orbit_turns, 1, 64)
    order = group.order
    side = conv_out(image_size, lift_k, lift_stride, lift_k // 2)
    total, side = _group_block_cost(order, widths[0] * lift_k**2, widths[0], side, pool=lift_stride == 1)
    for c_in, c_out in zip(widths[:-1], widths[1:], strict=True):
        block, side = _group_block_cost(order, c_out * c_in * order * k**2, c_out, side, pool=True)
        total += block
    # each kernel's |G| moved copies (permuted, flipped, turned, stacked), built once for all the views
    kernels = 4 * order * total.parameters
    if bins > side**2:
        raise ValueError(f"radial_bins {bins} exceeds the {side}x{side} final plane's pixels")
    features = widths[-1] * (bins or 1)
    pooled = widths[-1] * side**2 + features + bins * side**2
    per_view = total.activation_floats + pooled + 2 * hidden + num_classes
    parameters = total.parameters + features * hidden + hidden + hidden * num_classes + num_classes
    return ModelCost(parameters, kernels + turns * (per_view + 2 * image_size**2))


def _averaged_turns(build_config: dict) -> list[float]:
    return orbit_turn_angles(build_config.get("group", "C4"), int(build_config.get("orbit_turns", 1)))


@register("gcnn", cost=gcnn_cost,
          description="group CNN from scratch (lifting + group convs, exact on 90-deg rotations/flips)",
          uses_group=True, invariant=True, odd_size_for_exactness=False, averaged_turns=_averaged_turns)
def build_gcnn(num_classes: int, group: Group, image_size: int, widths=(16, 24, 32, 32), lift_kernel_size: int = 5,
               kernel_size: int = 3, hidden: int = 64, group_pool: str = "max", lift_stride: int = 1,
               radial_bins: int = 0, orbit_turns: int = 1) -> GroupCNN:
    if lift_stride == 2 and image_size % 2 == 0:
        raise ValueError(f"gcnn with lift_stride 2 needs an odd image size (a centred stride-2 grid), got {image_size}")
    model = GroupCNN(num_classes, group, tuple(widths), lift_kernel_size, kernel_size, hidden, group_pool, lift_stride,
                     radial_bins, orbit_turns)
    if radial_bins:
        model.rings.weights(*model.final_plane_size(image_size))  # refuses too many bins for this size now
    return model
