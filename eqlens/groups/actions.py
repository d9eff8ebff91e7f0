"""How group elements act on images ``[..., H, W]`` and on group-channel tensors ``[B, C, |G|, H, W]``.

Convention (shared with escnn for C_N): a rotation by +90 deg is ``torch.rot90(x, 1, dims=(-2, -1))``,
counter-clockwise as an image is displayed (row 0 on top); the mirror is ``torch.flip(x, dims=[-1])``.
``g = r^k m^f`` flips first, then rotates. Multiples of 90 deg and flips are exact pixel
permutations; any other angle is resampled (bilinear, optionally supersampled), and comparisons
at such angles should use :func:`circular_mask` so the corners that rotate out of the frame do
not count.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from .group import Group, GroupElement


def rotate_exact(x: torch.Tensor, quarter_turns: int) -> torch.Tensor:
    """Rotate ``[..., H, W]`` by ``quarter_turns * 90`` deg counter-clockwise, exactly."""
    return torch.rot90(x, quarter_turns % 4, dims=(-2, -1))


def circular_mask(height: int, width: int, device=None, dtype=torch.float32) -> torch.Tensor:
    """``[H, W]`` mask, 1 inside the disk inscribed in the frame (pixel centres), 0 outside.

    Rotating an image about its centre maps the disk onto itself, so masked images can be
    compared at any angle."""
    radius = min(height, width) / 2.0
    v = torch.arange(height, device=device, dtype=torch.float64) - (height - 1) / 2.0
    u = torch.arange(width, device=device, dtype=torch.float64) - (width - 1) / 2.0
    r2 = v[:, None] ** 2 + u[None, :] ** 2
    return (r2 <= radius**2).to(dtype)


def rotate(
    x: torch.Tensor,
    angle_deg: float | torch.Tensor,
    *,
    exact_when_possible: bool = True,
    supersample: int = 1,
    mask: bool = False,
    mode: str = "bilinear",
) -> torch.Tensor:
    """Rotate images ``[B, C, H, W]`` (or ``[H, W]``/``[C, H, W]``) counter-clockwise by ``angle_deg``.

    ``angle_deg`` is a float or a ``[B]`` tensor (one angle per image). Multiples of 90 deg go
    through :func:`rotate_exact` when ``exact_when_possible`` (and a single float angle is
    given); other angles are resampled about the image centre, zero outside the frame.
    ``supersample=s`` averages ``s x s`` samples per output pixel (less aliasing).
    ``mask=True`` zeroes everything outside the inscribed disk.
    """
    squeeze = 4 - x.dim()
    if squeeze < 0:
        raise ValueError(f"expected [B, C, H, W], [C, H, W] or [H, W], got {tuple(x.shape)}")
    x4 = x.reshape((1,) * squeeze + tuple(x.shape))
    batch, _, height, width = x4.shape
    if not torch.is_tensor(angle_deg) and exact_when_possible and float(angle_deg) % 90 == 0:
        out = rotate_exact(x4, int(round(float(angle_deg) / 90)))
    else:
        out = _resample_rotation(x4, angle_deg, supersample, mode)
    if mask:
        out = out * circular_mask(height, width, device=x.device, dtype=x.dtype)
    return out.reshape(out.shape[squeeze:]) if squeeze else out


def _resample_rotation(x: torch.Tensor, angle_deg, supersample: int, mode: str) -> torch.Tensor:
    batch, channels, height, width = x.shape
    compute_dtype = x.dtype if x.dtype in (torch.float32, torch.float64) else torch.float32
    theta = torch.as_tensor(angle_deg, dtype=compute_dtype, device=x.device) * (math.pi / 180.0)
    theta = theta.expand(batch) if theta.dim() == 0 else theta
    if theta.shape != (batch,):
        raise ValueError(f"need one angle or one per image ({batch}), got {tuple(theta.shape)}")
    s = max(int(supersample), 1)
    # Output sample positions in pixel units about the centre, s x s per pixel.
    sub = (torch.arange(s, dtype=compute_dtype, device=x.device) + 0.5) / s - 0.5
    v = (torch.arange(height, dtype=compute_dtype, device=x.device)[:, None] + sub).reshape(-1)
    u = (torch.arange(width, dtype=compute_dtype, device=x.device)[:, None] + sub).reshape(-1)
    v = v - (height - 1) / 2.0
    u = u - (width - 1) / 2.0
    vv, uu = torch.meshgrid(v, u, indexing="ij")  # [H s, W s]
    cos, sin = torch.cos(theta)[:, None, None], torch.sin(theta)[:, None, None]
    # Source of an output sample: (u', v') = (u cos - v sin, u sin + v cos); at 90 deg this is
    # (-v, u), which is exactly torch.rot90(x, 1, dims=(-2, -1)).
    src_u = uu * cos - vv * sin
    src_v = uu * sin + vv * cos
    grid = torch.stack((src_u / (width / 2.0), src_v / (height / 2.0)), dim=-1)
    out = F.grid_sample(x.to(compute_dtype), grid, mode=mode, padding_mode="zeros", align_corners=False)
    if s > 1:
        out = F.avg_pool2d(out, s)
    return out.to(x.dtype)


def act_on_image(x: torch.Tensor, g: GroupElement, **rotate_kwargs) -> torch.Tensor:
    """``g . x`` for images ``[..., H, W]``: flip (if any), then rotate by ``g.angle_deg``.

    Exact for 90-deg multiples and flips, resampled otherwise (``rotate_kwargs`` go to
    :func:`rotate`)."""
    if g.flip:
        x = torch.flip(x, dims=[-1])
    if g.is_exact_on_pixels:
        return rotate_exact(x, (4 * g.rot) // g.order)
    return rotate(x, g.angle_deg, **rotate_kwargs)


def act_on_group_channels(features: torch.Tensor, group: Group, g: GroupElement, **rotate_kwargs) -> torch.Tensor:
    """``rho(g) F`` for a regular feature field ``F`` of shape ``[B, C, |G|, H, W]``.

    The group axis is permuted by the left-regular representation, ``(rho(g)F)[h] = F[g^-1 h]``
    (for C_N a rotation by ``k`` rolls the axis by ``+k``), and every map is moved by ``g`` in the
    plane. This is what an equivariant layer must produce from ``g . x``."""
    if features.dim() < 3 or features.shape[-3] != group.order:
        raise ValueError(f"expected [..., |G|={group.order}, H, W], got {tuple(features.shape)}")
    perm = torch.as_tensor(group.regular_permutation(g), device=features.device)
    permuted = features.index_select(-3, perm)
    flat = permuted.reshape(-1, *permuted.shape[-3:]) if permuted.dim() != 4 else permuted
    moved = act_on_image(flat, g, **rotate_kwargs)
    # a quarter turn swaps H and W of non-square maps
    return moved.reshape(*permuted.shape[:-2], *moved.shape[-2:])


def stabilise_group_channels(features: torch.Tensor, group: Group, g: GroupElement, **rotate_kwargs) -> torch.Tensor:
    """Undo ``g`` on features computed from ``g . x``: ``rho(g)^-1 F``.

    For an exactly equivariant layer the result equals the features of the upright input (the
    "stabilised" view of the app)."""
    return act_on_group_channels(features, group, group.inverse(g), **rotate_kwargs)
