"""Input transforms of training and evaluation: random rotations (and flips) for training, and the
circular mask every split shares.

Why a mask: a rotation by an angle that is not a multiple of 90 deg brings zeros into the corners,
while upright test images have noise there. Unmasked, training images would carry corner patterns
the test images never show (a train/test mismatch of the kind that kept the seed's 3-class run at
chance). Zeroing everything outside the inscribed disk of EVERY input, augmented or not, makes a
rotated training image and an upright test image the same kind of picture; the disk maps onto
itself under any rotation. The checkpoint records the choice (``card["input"]["circular_mask"]``)
and :func:`model_input` applies it, so evaluation and the app feed models what they were trained on.
"""

from __future__ import annotations

import torch

from ..data.transforms import prepare_batch
from ..groups import Group, circular_mask, rotate


def apply_circular_mask(x: torch.Tensor) -> torch.Tensor:
    """``[B, C, H, W]`` -> the same with every pixel outside the inscribed disk set to 0."""
    return x * circular_mask(x.shape[-2], x.shape[-1], device=x.device, dtype=x.dtype)


def model_input(images: torch.Tensor, image_size: int | None, mask: bool) -> torch.Tensor:
    """Raw or normalised images ``[B, H, W]`` / ``[B, 1, H, W]`` -> the model's input ``[B, 1, S, S]``:
    resized and min-max normalised (:func:`eqlens.data.transforms.prepare_batch`), then masked."""
    x = prepare_batch(images, image_size)
    return apply_circular_mask(x) if mask else x


def random_symmetry(x: torch.Tensor, group: Group, generator: torch.Generator) -> torch.Tensor:
    """Each image of ``x [B, C, H, W]`` rotated by its own uniform angle in [0, 360) deg (bilinear,
    about the centre), after a mirror ``x -> -x`` with probability 1/2 when ``group`` is dihedral.

    Random numbers come from ``generator`` (on the CPU, so a run draws the same angles on any device)."""
    batch = x.shape[0]
    angles = torch.rand(batch, generator=generator, dtype=torch.float64) * 360.0
    if group.dihedral:
        flip = (torch.rand(batch, generator=generator) < 0.5).to(x.device)
        x = torch.where(flip[:, None, None, None], torch.flip(x, dims=[-1]), x)
    return rotate(x, angles.to(device=x.device, dtype=torch.float32))


class Augmenter:
    """The training-time transform: :func:`random_symmetry` (if ``enabled``), then the mask (if ``mask``).

    Evaluation applies only the mask (:meth:`evaluation`)."""

    def __init__(self, group: Group, enabled: bool = True, mask: bool = True):
        self.group, self.enabled, self.mask = group, enabled, mask

    def training(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        if self.enabled:
            x = random_symmetry(x, self.group, generator)
        return apply_circular_mask(x) if self.mask else x

    def evaluation(self, x: torch.Tensor) -> torch.Tensor:
        return apply_circular_mask(x) if self.mask else x
