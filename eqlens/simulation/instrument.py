"""The instrument: pixel grid, supersampling, Gaussian PSF, and noise.

Pixel grid (lenstronomy's, so arrays match the DeepLense files): column j is at
x = (j - (N - 1) / 2) * pixel_scale and row i at y = (i - (N - 1) / 2) * pixel_scale, i.e. the array
row index grows with y. Shown with row 0 on top (imshow/plotly default) the sky is mirrored in y,
exactly as the DeepLense images look. The grid is symmetric about the centre, so a 90-deg turn of
the scene maps pixel centres onto pixel centres: ``torch.rot90(image, k, dims=(-2, -1))`` (counter-
clockwise as displayed) equals the image of the scene turned by -k * 90 deg in sky angles.

Supersampling by s: each pixel is ray-traced at s x s sub-pixel centres (a grid with the same
symmetry) and averaged, before the PSF (as lenstronomy without supersampled convolution).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from . import rng

FWHM_PER_SIGMA = 2.0 * math.sqrt(2.0 * math.log(2.0))


def pixel_axis(n: int, pixel_scale: float, supersampling: int = 1, device=None, dtype=torch.float64) -> torch.Tensor:
    """Coordinates (arcsec) of the ``n * supersampling`` (sub-)pixel centres along one axis, ascending."""
    m = n * supersampling
    return (torch.arange(m, device=device, dtype=dtype) - (m - 1) / 2) * (pixel_scale / supersampling)


def downsample(image: torch.Tensor, supersampling: int) -> torch.Tensor:
    """Average ``[B, H*s, W*s]`` sub-pixels to ``[B, H, W]``."""
    if supersampling == 1:
        return image
    return F.avg_pool2d(image[:, None], supersampling)[:, 0]


def psf_radius_pixels(max_fwhm_arcsec: float, pixel_scale: float, truncation: float) -> int:
    """Half-width (pixels) of the PSF kernel: ``truncation`` sigmas of the widest PSF, at least 1."""
    sigma = max_fwhm_arcsec / FWHM_PER_SIGMA / pixel_scale
    return max(1, math.ceil(truncation * sigma))


def gaussian_kernels_1d(fwhm_arcsec: torch.Tensor, pixel_scale: float, radius: int) -> torch.Tensor:
    """Normalised 1-D Gaussian kernels ``[B, 2 * radius + 1]`` sampled at pixel centres, one per FWHM ``[B]``.

    The 2-D PSF is their outer product (a Gaussian is separable); each sums to 1, so the PSF
    conserves flux away from the borders."""
    sigma = (fwhm_arcsec / FWHM_PER_SIGMA / pixel_scale)[:, None]
    t = torch.arange(-radius, radius + 1, device=fwhm_arcsec.device, dtype=fwhm_arcsec.dtype)[None]
    k = torch.exp(-0.5 * (t / sigma) ** 2)
    return k / k.sum(dim=1, keepdim=True)


def convolve_psf(image: torch.Tensor, kernels: torch.Tensor) -> torch.Tensor:
    """Convolve each ``[B, H, W]`` image with its separable kernel ``[B, K]`` (zero padding: flux
    that the PSF spreads beyond the border is lost, as on a detector).

    Written as K shifted multiply-adds per axis rather than a grouped ``conv2d``: convolution
    algorithms change with the batch size and round differently, element-wise ops do not, so an
    image comes out bit-identical whatever batch it is in. For a 7-tap PSF it is as fast."""
    k = kernels.shape[1]
    r = k // 2
    weights = kernels.to(image.dtype)[:, :, None, None]  # [B, K, 1, 1]
    padded = F.pad(image, (r, r))
    rows = weights[:, 0] * padded[..., 0 : image.shape[-1]]
    for j in range(1, k):
        rows = torch.addcmul(rows, weights[:, j], padded[..., j : j + image.shape[-1]])
    padded = F.pad(rows, (0, 0, r, r))
    out = weights[:, 0] * padded[..., 0 : image.shape[-2], :]
    for j in range(1, k):
        out = torch.addcmul(out, weights[:, j], padded[..., j : j + image.shape[-2], :])
    return out


def add_noise(
    flux: torch.Tensor,
    exposure: torch.Tensor,
    background_rms: torch.Tensor,
    seed: int,
    indices: torch.Tensor,
    model: str = "deeplense",
) -> torch.Tensor:
    """Noisy counts from a noiseless ``flux [B, H, W]`` (counts/s per pixel), ``exposure, background_rms [B]``.

    * ``"deeplense"`` (DeepLenseSim Model I, reproduced): ``Poisson(clip(t f + sqrt(t f) z1 + t sigma z2, 0))``
      with z1, z2 standard normals: non-negative integers, variance ~ 2 t f + (t sigma)^2 where the clip
      is inactive (the Poisson-like term is applied twice, as in their code).
    * ``"poisson"``: ``Poisson(t f) + t sigma z``: photon counts plus Gaussian background, variance
      t f + (t sigma)^2.
    Every draw comes from :mod:`eqlens.simulation.rng` keyed by (seed, index), so an image's noise
    does not depend on its batch.
    """
    return add_noise_from_keys(flux, exposure, background_rms, *noise_keys(seed, indices), model)


def noise_keys(seed: int, indices: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The ``[B, 2]`` RNG keys of the noise of images ``indices``: (Gaussian stream, Poisson stream)."""
    return (rng.image_keys(seed, indices, rng.STREAMS["noise_gauss"]),
            rng.image_keys(seed, indices, rng.STREAMS["poisson"]))  # fmt: skip


def add_noise_from_keys(
    flux: torch.Tensor,
    exposure: torch.Tensor,
    background_rms: torch.Tensor,
    normal_keys: torch.Tensor,
    poisson_keys: torch.Tensor,
    model: str = "deeplense",
) -> torch.Tensor:
    """:func:`add_noise` given the keys of :func:`noise_keys`: tensors only (no Python integers derived from
    the seed), so ``torch.compile`` traces it once for every seed. Same arithmetic, in place."""
    if model not in ("deeplense", "poisson"):
        raise ValueError(f"unknown noise model {model!r}: use 'deeplense' or 'poisson'")
    t = exposure.reshape(-1, 1, 1).to(flux.dtype)
    sigma = background_rms.reshape(-1, 1, 1).to(flux.dtype)
    mean = flux.clamp(min=0).mul_(t)
    z1, z2 = rng.normal_pair(normal_keys, flux.shape[1:], flux.dtype)
    background = z2.mul_(t * sigma)
    if model == "deeplense":
        rate = torch.sqrt(mean).mul_(z1).add_(mean).add_(background).clamp_(min=0)
        return rng.poisson(rate, poisson_keys)
    return rng.poisson(mean, poisson_keys).add_(background)


def noise_variance(flux: torch.Tensor, exposure: torch.Tensor, background_rms: torch.Tensor, model: str):
    """Variance of :func:`add_noise`'s counts where the clip at 0 is inactive (used to whiten residuals)."""
    t = exposure.reshape(-1, 1, 1).to(flux.dtype)
    sigma = background_rms.reshape(-1, 1, 1).to(flux.dtype)
    mean = t * flux.clamp(min=0)
    poisson_terms = 2 if model == "deeplense" else 1
    return poisson_terms * mean + (t * sigma) ** 2
