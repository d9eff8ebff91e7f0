"""Lensing data: DeepLense folders, single images, the simulated dataset, one normalisation."""

from .transforms import normalize_image, prepare_batch, resize_image

__all__ = ["normalize_image", "prepare_batch", "resize_image"]
