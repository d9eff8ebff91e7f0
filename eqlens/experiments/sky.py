"""Turning the sky instead of the picture: test images of rotated scenes, rendered by the simulator.

Rotating a finished image resamples it (bilinear, here with supersampling), which low-pass filters
the pixel noise and the finest arcs. A model that reads pixel-scale structure then fails at off-grid
angles for the blur, not for the orientation (a picture turned by 15 deg and back shows it). Turning
the *scene* and rendering it avoids that: every copy has the instrument's own PSF, pixel grid and a
noise field drawn on that grid, exactly as an upright lens would.

Convention: ``angle`` turns the image counter-clockwise as ``torch.rot90(image, 1)`` does at 90 deg.
With the simulator's grid (array rows grow with y) that is the sky turned by ``-angle``, which is how
:meth:`eqlens.simulation.sampling.LensParameters.rotated90` turns a scene; at multiples of 90 deg the
two agree, and the noiseless image equals the exactly rotated one.
"""

from __future__ import annotations

import math

import torch

from ..simulation import LensSimulator, SimulationConfig
from ..simulation.sampling import LensParameters

# (x, y) field pairs of a scene and their spin: positions turn with the sky angle, ellipticities and
# shear (spin 2) with twice it.
_PAIRS = (("lens_center_x", "lens_center_y", 1), ("source_center_x", "source_center_y", 1),
          ("vortex_center_x", "vortex_center_y", 1), ("subhalo_x", "subhalo_y", 1),
          ("lens_e1", "lens_e2", 2), ("source_e1", "source_e2", 2), ("gamma1", "gamma2", 2))


def rotate_scene(params: LensParameters, angle_deg: float) -> LensParameters:
    """The scene whose image is ``params``' image turned by ``angle_deg`` (see the module notes).

    Positions turn by the sky angle ``phi = -angle``; spin-2 quantities (ellipticities e1, e2 and
    shear gamma1, gamma2) turn by ``2 phi``; the vortex line's direction by ``phi``. Radii, masses,
    the PSF (circular) and the exposure do not change."""
    phi = -math.radians(angle_deg)
    changes = {"vortex_angle": params.vortex_angle + phi}
    for first, second, spin in _PAIRS:
        c, s = math.cos(spin * phi), math.sin(spin * phi)
        x, y = getattr(params, first), getattr(params, second)
        changes[first], changes[second] = c * x - s * y, s * x + c * y
    return params.replace(**changes)


def render_rotated(config: SimulationConfig, seed: int, indices, angle_deg: float, image_size: int | None = None,
                   device="cpu", simulator: LensSimulator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Images ``indices`` of simulator stream ``seed`` with every scene turned by ``angle_deg``:
    ``(x [B, 1, S, S] in [0, 1], labels [B])``, resized to ``image_size`` and min-max normalised
    like every other input. Noise is drawn on the pixel grid with the image's own keys, so at 0 deg
    this is exactly the simulator's image."""
    from ..data.transforms import prepare_batch

    sim = simulator or LensSimulator(config, device=device)
    idx = torch.as_tensor(indices, dtype=torch.int64, device=sim.device).reshape(-1)
    params = rotate_scene(sim.sample(seed, idx), angle_deg)
    counts = sim.add_noise(sim.render(params), params, seed, idx)
    resize = image_size if image_size and image_size != config.image_size else None
    return prepare_batch(counts, resize).to(torch.float32), params.labels
