"""Training-time transforms: random rotations (and mirrors for D_N) of the training images, or of the
simulated scenes before they are rendered. Every split, augmented or not, then gets the circular mask
(:func:`eqlens.data.transforms.apply_circular_mask`, where the reason for it is given).
"""

from __future__ import annotations

import torch

from ..groups import Group, rotate
from .transforms import apply_circular_mask

AUGMENT_MODES = ("image", "scene", "mixed")
"""How training turns an image: ``image`` resamples the picture (any data; bilinear interpolation
also smooths the pixel noise, so turned training images are not quite the upright test images),
``scene`` turns a simulated lens's scene and renders it (the instrument's own grid and noise at
every angle: turned training images are exactly as likely as upright ones), ``mixed`` renders turned
scenes and then resamples a share (:data:`MIXED_RESAMPLED_SHARE`) of them by another uniform angle, so
the model also meets the bilinear pictures a user turns with a slider (an uploaded image cannot be
re-rendered)."""

SCENE_MODES = ("scene", "mixed")
"""The modes that render turned scenes: simulated training data only."""

MIXED_RESAMPLED_SHARE = 0.5
"""In ``mixed`` mode, each turned rendering is also resampled with this probability."""


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


def _resample_some(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """``x [B, C, H, W]`` with each image, with probability :data:`MIXED_RESAMPLED_SHARE`, rotated by its own
    uniform angle (bilinear, about the centre); the others unchanged. Draws ``B`` choices then ``B`` angles,
    whatever is chosen, so the generator's stream does not depend on the data."""
    chosen = torch.rand(x.shape[0], generator=generator) < MIXED_RESAMPLED_SHARE
    angles = _random_angles(x.shape[0], generator)
    if not bool(chosen.any()):
        return x
    out = x.clone()
    picked = chosen.to(x.device)
    out[picked] = rotate(x[picked], angles[chosen].to(device=x.device, dtype=torch.float32))
    return out


class Augmenter:
    """The training-time transform of one run.

    ``mode="image"``: :func:`random_symmetry` on each batch. ``mode="scene"``: the batch was rendered
    with its scenes turned by :meth:`scene_angles` (see ``SimulatedLensDataset.turned_batch``), and
    :meth:`training` only mirrors (dihedral groups; a pixel permutation, nothing resampled).
    ``mode="mixed"``: as ``scene``, then :func:`_resample_some` turns a share of the pictures once more,
    resampled. Either way the mask comes last (if ``mask``); ``enabled=False`` leaves only the mask.
    Evaluation applies only the mask (:meth:`evaluation`)."""

    def __init__(self, group: Group, enabled: bool = True, mask: bool = True, mode: str = "image"):
        if mode not in AUGMENT_MODES:
            raise ValueError(f"unknown augmentation mode {mode!r}; use one of {', '.join(AUGMENT_MODES)}")
        self.group, self.enabled, self.mask, self.mode = group, enabled, mask, mode

    @property
    def turns_scenes(self) -> bool:
        return self.enabled and self.mode in SCENE_MODES

    def scene_angles(self, batch: int, generator: torch.Generator) -> torch.Tensor | None:
        """``[batch]`` uniform angles (deg, float64, CPU) to render the next batch's scenes at, drawn
        before :meth:`training` draws its mirrors; None unless scenes are turned."""
        return _random_angles(batch, generator) if self.turns_scenes else None

    def training(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        if self.turns_scenes:
            x = _random_mirror(x, self.group, generator)
            if self.mode == "mixed":
                x = _resample_some(x, generator)
        elif self.enabled:
            x = random_symmetry(x, self.group, generator)
        return apply_circular_mask(x) if self.mask else x

    def evaluation(self, x: torch.Tensor) -> torch.Tensor:
        return apply_circular_mask(x) if self.mask else x
