"""Input transforms of training and evaluation: random rotations (and flips) for training, and the
circular mask every split shares.

Why a mask: a rotation by an angle that is not a multiple of 90 deg brings zeros into the corners,
while upright test images have noise there. Unmasked, training images would carry corner patterns
the test images never show (a train/test mismatch of the kind that kept the seed's 3-class run at
chance). Zeroing everything outside the inscribed disk of EVERY input, augmented or not, makes a
rotated training image and an upright test image the same kind of picture; the disk maps onto
itself under any rotation. The checkpoint records the choice (``card["input"]["circular_mask"]``)
and :meth:`eqlens.data.transforms.InputSpec.prepare` applies it, so evaluation and the app feed models what
they were trained on.
"""

from __future__ import annotations

import torch

from ..groups import Group, circular_mask, rotate


def apply_circular_mask(x: torch.Tensor) -> torch.Tensor:
    """``[B, C, H, W]`` -> the same with every pixel outside the inscribed disk set to 0."""
    return x * circular_mask(x.shape[-2], x.shape[-1], device=x.device, dtype=x.dtype)


AUGMENT_MODES = ("image", "scene")
"""How training turns an image: ``image`` resamples the picture (any data; bilinear interpolation
also smooths the pixel noise, so turned training images are not quite the upright test images),
``scene`` turns a simulated lens's scene and renders it (the instrument's own grid and noise at
every angle: turned training images are exactly as likely as upright ones)."""


def _random_angles(batch: int, generator: torch.Generator) -> torch.Tensor:
    return torch.rand(batch, generator=generator, dtype=torch.float64) * 360.0


def _random_mirror(x: torch.Tensor, group: Group, generator: torch.Generator) -> torch.Tensor:
    """Each image of ``x [B, C, H, W]`` mirrored (``x -> -x``, exact) with probability 1/2 when
    ``group`` is dihedral; unchanged for a cyclic group (no random number drawn)."""
    if not group.dihedral:
        return x
    flip = (torch.rand(x.shape[0], generator=generator) < 0.5).to(x.device)
    return torch.where(flip[:, None, None, None], torch.flip(x, dims=[-1]), x)


def random_symmetry(x: torch.Tensor, group: Group, generator: torch.Generator) -> torch.Tensor:
    """Each image of ``x [B, C, H, W]`` rotated by its own uniform angle in [0, 360) deg (bilinear,
    about the centre), after a mirror ``x -> -x`` with probability 1/2 when ``group`` is dihedral.

    Random numbers come from ``generator`` (on the CPU, so a run draws the same angles on any device)."""
    angles = _random_angles(x.shape[0], generator)
    x = _random_mirror(x, group, generator)
    return rotate(x, angles.to(device=x.device, dtype=torch.float32))


class Augmenter:
    """The training-time transform of one run.

    ``mode="image"``: :func:`random_symmetry` on each batch. ``mode="scene"``: the batch was rendered
    with its scenes turned by :meth:`scene_angles` (see ``SimulatedLensDataset.turned_batch``), and
    :meth:`training` only mirrors (dihedral groups; a pixel permutation, nothing resampled). Either
    way the mask comes last (if ``mask``); ``enabled=False`` leaves only the mask. Evaluation applies
    only the mask (:meth:`evaluation`)."""

    def __init__(self, group: Group, enabled: bool = True, mask: bool = True, mode: str = "image"):
        if mode not in AUGMENT_MODES:
            raise ValueError(f"unknown augmentation mode {mode!r}; use one of {', '.join(AUGMENT_MODES)}")
        self.group, self.enabled, self.mask, self.mode = group, enabled, mask, mode

    @property
    def turns_scenes(self) -> bool:
        return self.enabled and self.mode == "scene"

    def scene_angles(self, batch: int, generator: torch.Generator) -> torch.Tensor | None:
        """``[batch]`` uniform angles (deg, float64, CPU) to render the next batch's scenes at, drawn
        before :meth:`training` draws its mirrors; None unless scenes are turned."""
        return _random_angles(batch, generator) if self.turns_scenes else None

    def training(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        if self.turns_scenes:
            x = _random_mirror(x, self.group, generator)
        elif self.enabled:
            x = random_symmetry(x, self.group, generator)
        return apply_circular_mask(x) if self.mask else x

    def evaluation(self, x: torch.Tensor) -> torch.Tensor:
        return apply_circular_mask(x) if self.mask else x
