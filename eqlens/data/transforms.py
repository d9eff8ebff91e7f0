"""The one normalisation and the one resizing, identical for training, testing and the app.

Normalisation: per-image min-max to [0, 1] (the DeepLense ``(1, H, W)`` convention), computed
over the last two axes. It commutes with any pixel permutation, so exact rotations and flips of
the input give exactly rotated/flipped normalised images. A constant image maps to zeros.

Resizing: bilinear with antialiasing (``align_corners=False``), the same function for every split;
the original 3-class EqCvT run failed because its train and test transforms rescaled differently.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def normalize_image(x: torch.Tensor) -> torch.Tensor:
    """Min-max normalise ``[..., H, W]`` to [0, 1] per image, in float32 (float64 kept)."""
    if not x.is_floating_point():
        x = x.float()
    lo = x.amin(dim=(-2, -1), keepdim=True)
    hi = x.amax(dim=(-2, -1), keepdim=True)
    span = hi - lo
    return torch.where(span > 0, (x - lo) / torch.where(span > 0, span, torch.ones_like(span)), torch.zeros_like(x))


def resize_image(x: torch.Tensor, size: int | None) -> torch.Tensor:
    """Resize ``[B, C, H, W]`` (or ``[C, H, W]``) to ``size x size``; ``None`` or equal size: unchanged.

    Downsampling uses antialiased bilinear interpolation; the map commutes with exact 90-deg
    rotations and flips for square inputs up to float rounding (the sampling grid is symmetric
    about the centre)."""
    if size is None or (x.shape[-1] == size and x.shape[-2] == size):
        return x
    squeeze = x.dim() == 3
    x4 = x[None] if squeeze else x
    out = F.interpolate(x4, size=(size, size), mode="bilinear", align_corners=False, antialias=True)
    return out[0] if squeeze else out


def prepare_batch(images: torch.Tensor, image_size: int | None) -> torch.Tensor:
    """Counts or raw images ``[B, H, W]`` or ``[B, 1, H, W]`` -> model input ``[B, 1, S, S]``:
    resized (if ``image_size``) then min-max normalised."""
    if images.dim() == 3:
        images = images[:, None]
    if not images.is_floating_point():
        images = images.float()
    return normalize_image(resize_image(images, image_size))
