"""The one input transform, identical for training, testing and the app: an optional native central
crop, the one resizing, the one normalisation, and the circular mask.

Crop: the central ``crop x crop`` pixels of the native image, before any resizing, so a model can see
the Einstein ring at the instrument's own resolution instead of a shrunk whole frame (Model I: ring
radius ~26 px of 150; a 81 px crop keeps 2" around the centre at 0.05"/px). An odd crop of an even
image (or the reverse) cannot be centred exactly; its window starts at ``(H - crop) // 2``, half a
pixel off the frame's centre, the same for every split and page.

Normalisation: per-image min-max to [0, 1] (the DeepLense ``(1, H, W)`` convention), computed
over the last two axes. It commutes with any pixel permutation, so exact rotations and flips of
the input give exactly rotated/flipped normalised images. A constant image maps to zeros.

Resizing: bilinear with antialiasing (``align_corners=False``), the same function for every split;
the original 3-class EqCvT run failed because its train and test transforms rescaled differently.

Mask: a rotation by an angle that is not a multiple of 90 deg brings zeros into the corners, while
upright test images have noise there. Unmasked, training images would carry corner patterns the test
images never show (a train/test mismatch of the kind that kept the EqCvT project's 3-class run at
chance). Zeroing everything outside the inscribed disk of EVERY input, augmented or not, makes a
rotated training image and an upright test image the same kind of picture; the disk maps onto itself
under any rotation. The checkpoint records the choice (``card["input"]["circular_mask"]``) and
:meth:`InputSpec.prepare` applies it, so evaluation and the app feed models what they were trained on.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ..errors import DataError
from ..groups import circular_mask

MAX_INPUT_SIZE = 1024  # a model input side above this is refused (memory grows with its square)
MAX_CARD_IMAGE_SIZE = 512  # the largest model input side a checkpoint's card (and so a training run) may state


def apply_circular_mask(x: torch.Tensor) -> torch.Tensor:
    """``[..., H, W]`` -> the same with every pixel outside the inscribed disk set to 0."""
    return x * circular_mask(x.shape[-2], x.shape[-1], device=x.device, dtype=x.dtype)


CONSTANT_TOLERANCE_EPS = 128  # spans within this many float eps of the image's magnitude count as constant


def normalize_image(x: torch.Tensor) -> torch.Tensor:
    """Min-max normalise ``[..., H, W]`` to [0, 1] per image, in float32 (float64 kept).

    A constant image maps to zeros, and so does a near-constant one: an image whose span ``hi - lo`` is at
    most ``CONSTANT_TOLERANCE_EPS`` machine epsilons of its magnitude ``max(|lo|, |hi|)`` (float32: a relative
    span of 7.6e-6; float64: 2.8e-14). That is float rounding, not signal: the antialiased resize of a
    constant image leaves such a span (up to ~90 eps for a 4096 -> 33 px resize), which plain min-max
    would stretch into a full-range noise pattern. The decision is per image, so the map still commutes
    with pixel permutations."""
    if not x.is_floating_point():
        x = x.float()
    lo = x.amin(dim=(-2, -1), keepdim=True)
    hi = x.amax(dim=(-2, -1), keepdim=True)
    span = hi - lo
    eps = torch.finfo(torch.float64 if x.dtype == torch.float64 else torch.float32).eps
    varies = span > CONSTANT_TOLERANCE_EPS * eps * torch.maximum(lo.abs(), hi.abs())
    return torch.where(varies, (x - lo) / torch.where(varies, span, torch.ones_like(span)), torch.zeros_like(x))


def center_crop(x: torch.Tensor, crop: int | None) -> torch.Tensor:
    """The central ``crop x crop`` window of ``[..., H, W]`` (``None``: unchanged). Raises
    :class:`DataError` when ``crop`` exceeds the image. The window starts at ``(H - crop) // 2``."""
    if crop is None:
        return x
    h, w = x.shape[-2:]
    if crop > h or crop > w:
        raise DataError(f"a {crop} px crop does not fit a {h}x{w} image")
    top, left = (h - crop) // 2, (w - crop) // 2
    return x[..., top : top + crop, left : left + crop]


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


def prepare_batch(images: torch.Tensor, image_size: int | None, crop: int | None = None) -> torch.Tensor:
    """Counts or raw images ``[B, H, W]`` or ``[B, 1, H, W]`` -> model input ``[B, 1, S, S]``:
    centrally cropped (if ``crop``), resized (if ``image_size``), then min-max normalised."""
    if images.dim() == 3:
        images = images[:, None]
    if not images.is_floating_point():
        images = images.float()
    return normalize_image(resize_image(center_crop(images, crop), image_size))


@dataclass(frozen=True)
class InputSpec:
    """How a checkpoint's model wants its images: the card's ``input`` record, validated once.

    ``image_size``: the model's input side S; ``crop``: the native central crop taken before
    resizing (None: the whole frame); ``circular_mask``: zero outside the inscribed disk."""

    image_size: int
    crop: int | None = None
    circular_mask: bool = True

    def __post_init__(self):
        for name in ("image_size", "crop"):
            value = getattr(self, name)
            if value is None and name == "crop":
                continue
            if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= MAX_INPUT_SIZE:
                raise DataError(f"input {name} must be an integer in [1, {MAX_INPUT_SIZE}], got {value!r}")
        if not isinstance(self.circular_mask, bool):
            raise DataError(f"input circular_mask must be true or false, got {self.circular_mask!r}")

    @classmethod
    def from_record(cls, record: Mapping, fallback_size: int | None = None) -> InputSpec:
        """From a card's ``input`` dict (``fallback_size``: the build config's size, for old cards
        without ``input.image_size``). ``circular_mask`` must be stated: the default for a card that
        leaves it out is :class:`eqlens.checkpoint.ModelCard`'s, the one reader of cards."""
        if not isinstance(record, Mapping):
            raise DataError(f"the card's input record must be a mapping, got {type(record).__name__}")
        size = record.get("image_size") or fallback_size
        return cls(image_size=size, crop=record.get("crop"), circular_mask=record.get("circular_mask"))

    def to_record(self) -> dict:
        return {"image_size": self.image_size, "crop": self.crop, "circular_mask": self.circular_mask,
                "normalisation": "per-image min-max to [0, 1]"}

    def pixel_scale(self, native_size: int, native_pixel_scale: float) -> float:
        """Arcsec per model-input pixel for a ``native_size``-px image of ``native_pixel_scale``
        arcsec/px: the crop (or the whole frame) spread over ``image_size`` pixels (Model I, 150 px at
        0.05"/px: an 81-px crop at 81 px keeps 0.05", the whole frame at 65 px is 0.115")."""
        return float(native_pixel_scale) * (self.crop or int(native_size)) / self.image_size

    def prepare(self, images: torch.Tensor) -> torch.Tensor:
        """Raw or normalised images ``[B, H, W]`` / ``[B, 1, H, W]`` -> model input ``[B, 1, S, S]``
        (crop, resize, min-max, then the mask when the spec has it)."""
        x = prepare_batch(images, self.image_size, self.crop)
        if self.circular_mask:
            x = apply_circular_mask(x)
        return x
