"""Lensing data: DeepLense folders, single images, the simulated dataset, one normalisation."""

from .deeplense import (
    CANONICAL_CLASS_ORDERS,
    LAYOUTS,
    DeepLenseFolderDataset,
    class_order,
    detect_layout,
    list_splits,
    load_deeplense_folder,
    natural_key,
)
from .images import DecodedImage, decode_image, load_image
from .simulated import SimulatedLensDataset
from .transforms import normalize_image, prepare_batch, resize_image

__all__ = [
    "CANONICAL_CLASS_ORDERS",
    "LAYOUTS",
    "DecodedImage",
    "DeepLenseFolderDataset",
    "SimulatedLensDataset",
    "class_order",
    "decode_image",
    "detect_layout",
    "list_splits",
    "load_deeplense_folder",
    "load_image",
    "natural_key",
    "normalize_image",
    "prepare_batch",
    "resize_image",
]
