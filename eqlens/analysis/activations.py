"""Group-channel views of a regular feature field ``[B, C, |G|, H, W]``.

A field has one map per group element (the "orientation channels", group axis ordered
``flip * N + rot``). Rotating the input by ``r * 360/N`` deg moves every map by that rotation and
rolls the group axis by ``r`` (for C_N; D_N permutes it by the regular representation). The
"stabilised" view undoes both, rotating the features back into the input's frame: for an
equivariant layer it stays still while the input turns, which is the e2cnn animation's point.
"""

from __future__ import annotations

import math

import torch

from ..groups import Group, act_on_group_channels, get_group, rotate, stabilise_group_channels


def field_channels(group_channels: torch.Tensor, field: int) -> torch.Tensor:
    """The |G| orientation channels of one field: ``[B, C, |G|, H, W] -> [B, |G|, H, W]``."""
    if group_channels.dim() != 5:
        raise ValueError(f"expected group channels [B, C, |G|, H, W], got {tuple(group_channels.shape)}")
    if not 0 <= field < group_channels.shape[1]:
        raise ValueError(f"field {field} out of range: the layer has {group_channels.shape[1]} fields")
    return group_channels[:, field]


def _roll_group_axis(features: torch.Tensor, shift: float) -> torch.Tensor:
    """Roll the group axis (dim -3) of a C_N field by a possibly fractional ``shift``: linear
    interpolation between the two neighbouring integer rolls (exact for whole shifts)."""
    low = math.floor(shift)
    frac = shift - low
    rolled = torch.roll(features, low, dims=-3)
    if frac < 1e-9:
        return rolled
    return (1 - frac) * rolled + frac * torch.roll(features, low + 1, dims=-3)


def stabilise(
    features: torch.Tensor, group: Group | str, angle_deg: float, flip: bool = False, supersample: int = 2
) -> torch.Tensor:
    """Rotate features of a turned input back into the input's frame: ``[B, C, |G|, H, W]`` -> same.

    ``features`` were computed from the input flipped (if ``flip``) and then rotated by
    ``angle_deg``. At a group element's angle this is exactly ``rho(g)^-1 F``; between elements
    the maps are rotated back by resampling and the group axis rolled back by the fractional
    step ``angle / (360/N)`` (linear between neighbouring channels), an approximation that makes
    the slider's view continuous."""
    group = get_group(group)
    step = 360.0 / group.order_rotations
    quarter = angle_deg / step
    if abs(quarter - round(quarter)) < 1e-9:
        g = group.element(int(round(quarter)), int(flip))
        return stabilise_group_channels(features, group, g, supersample=supersample)
    if flip:
        raise ValueError("a flip together with an angle between group elements has no stabilised view")
    b, c, n, h, w = features.shape
    back = rotate(features.reshape(b, c * n, h, w), -angle_deg, supersample=supersample).reshape(b, c, n, h, w)
    return _roll_group_axis(back, -quarter)


def equivariance_error(features_of_gx: torch.Tensor, features_of_x: torch.Tensor, group: Group | str,
                       rot: int, flip: int = 0) -> float:
    """``|F(g x) - rho(g) F(x)| / |F(x)|`` for ``g = r^rot m^flip``: 0 (up to float noise) for an
    equivariant layer and an exact element; both inputs ``[B, C, |G|, H, W]``."""
    group = get_group(group)
    expected = act_on_group_channels(features_of_x, group, group.element(rot, flip))
    scale = features_of_x.norm().clamp_min(1e-12)
    return float((features_of_gx - expected).norm() / scale)


def channel_orbit(features: torch.Tensor, field: int, group: Group | str) -> list[tuple[str, torch.Tensor]]:
    """Label each orientation channel of one field by its group element (for figure titles):
    ``[(label, [B, H, W]), ...]`` in group-axis order."""
    group = get_group(group)
    maps = field_channels(features, field)
    return [(str(g), maps[:, g.index]) for g in group.elements]


def oriented_kernel(size: int = 7, sigma: float = 1.2) -> torch.Tensor:
    """A ``[size, size]`` kernel with no rotational symmetry (a Gaussian edge detector plus an
    off-centre blob), so its rotated copies are visibly different: the teaching lifting kernel."""
    r = torch.arange(size, dtype=torch.float32) - (size - 1) / 2
    yy, xx = torch.meshgrid(r, r, indexing="ij")
    edge = xx * torch.exp(-(xx**2 + yy**2) / (2 * sigma**2))
    blob = torch.exp(-((xx - sigma) ** 2 + (yy + sigma) ** 2) / (2 * (sigma / 2) ** 2))
    kernel = edge + blob
    return kernel / kernel.abs().sum()


def lifting_layer(kernel: torch.Tensor, group: Group | str):
    """The models' own lifting layer (:class:`~eqlens.models.group_conv.LiftingConv`, one input and
    one output channel, no bias) holding ``kernel [k, k]`` (odd ``k``) as its free kernel, in eval
    mode: ``layer(x)`` maps ``[B, 1, H, W] -> [B, 1, |G|, H, W]`` by the very rule the networks use
    (channel ``g`` correlates the image with the kernel moved by ``g``), and
    ``layer.transformed_kernels()[:, 0, 0]`` is the ``[|G|, k, k]`` bank of moved kernels. Turning
    the image by an exact element ``g`` moves every map and permutes the channels by ``rho(g)``."""
    from ..models.group_conv import LiftingConv

    group = get_group(group)
    if kernel.dim() != 2 or kernel.shape[0] != kernel.shape[1] or kernel.shape[0] % 2 != 1:
        raise ValueError(f"a lifting kernel is [k, k] with odd k, got {tuple(kernel.shape)}")
    layer = LiftingConv(group, 1, 1, kernel_size=int(kernel.shape[0]), bias=False)
    with torch.no_grad():
        layer.weight.copy_(kernel.to(layer.weight)[None, None])
    return layer.eval()


def first_lifting_kernel(model: torch.nn.Module) -> tuple[torch.Tensor, int] | None:
    """``(kernel [k, k], output channel)`` of a trained model's first lifting layer (its strongest
    output channel, by the kernel's norm), or None for a model without one."""
    from ..models.group_conv import LiftingConv

    for module in model.modules():
        if isinstance(module, LiftingConv) and module.in_channels == 1:
            weight = module.weight.detach()[:, 0]  # [C', k, k]
            channel = int(weight.flatten(1).norm(dim=1).argmax())
            return weight[channel].clone(), channel
    return None
