"""The server-side work of one slider move, over a shared cached model (no st.* here).

Every call that runs the model holds the model's lock: inspection and Grad-CAM attach hooks to
the shared module, which other sessions' threads must not see half-way.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

from app import settings
from app.catalog import LoadedModel
from eqlens.analysis import attribution as attribution_lib
from eqlens.analysis.orbit import OrbitResult, orbit, orbit_angles, orbit_of_copies, rotated_copies
from eqlens.training.augment import apply_circular_mask

MAX_CACHED_RESULTS = 128


def input_at(x: torch.Tensor, angle: float, mask: bool = True, flip: bool = False) -> torch.Tensor:
    """The prepared input ``[1, 1, S, S]`` flipped (if asked) and turned by ``angle`` deg, exactly
    as the orbit turns it (so the "now" logits sit on the orbit curve)."""
    if flip:
        x = torch.flip(x, dims=[-1])
    return rotated_copies(x, [angle], mask=mask)


def orbit_of(loaded: LoadedModel, x: torch.Tensor, mask: bool = True, steps: int | None = None) -> OrbitResult:
    with loaded.lock:
        return orbit(loaded.model, x.to(settings.device()), orbit_angles(steps or settings.ORBIT_STEPS), mask=mask)


def inspect_at(loaded: LoadedModel, x_rot: torch.Tensor, attention: bool = True):
    """``model.inspect`` of one turned input, every tensor on the CPU (attention weights only if
    asked: capturing them recomputes softmax(QK^T), a large share of a CvT forward)."""
    with loaded.lock, torch.no_grad():
        result = loaded.model.inspect(x_rot.to(settings.device()), attention=attention)
    return _to_cpu(result)


def _to_cpu(inspection):
    inspection.logits = inspection.logits.cpu()
    if inspection.features is not None:
        inspection.features = inspection.features.cpu()
    inspection.group_channels = {k: v.cpu() for k, v in inspection.group_channels.items()}
    inspection.maps = {k: v.cpu() for k, v in inspection.maps.items()}
    for att in inspection.attention.values():
        att.weights = att.weights.cpu()
    return inspection


def attribution_at(loaded: LoadedModel, lens_digest: str, x_rot: torch.Tensor, angle: float, method: str,
                   target: int, layer: str | None = None, flip: bool = False) -> torch.Tensor:
    """``[H, W]`` attribution of the turned input, cached per (image, angle, method, target, layer)
    in the model's own LRU."""
    key = ("attribution", lens_digest, round(float(angle), 6), flip, method, int(target), layer,
           tuple(x_rot.shape))

    def compute():
        kw = {"n_steps": settings.IG_STEPS, "internal_batch_size": 8 if settings.DEVICE == "cpu" else 64}
        return attribution_lib.attribute(loaded.model, x_rot.to(settings.device()), method, int(target),
                                         layer=layer, **kw)[0].cpu()

    return _cached(loaded, key, compute)


def _cached(loaded: LoadedModel, key: tuple, compute):
    """``compute()`` once per key in the model's shared LRU (under its lock: compute may hook the model)."""
    with loaded.lock:
        cache = loaded.results
        if key in cache:
            cache.move_to_end(key)
            return cache[key]
        value = cache[key] = compute()
        while len(cache) > MAX_CACHED_RESULTS:
            cache.popitem(last=False)
        return value


@dataclass
class Move:
    """Everything one slider position needs: the turned input ``[1, 1, S, S]``, its inspection,
    the (cached) orbit, and the upright input and inspection (for the stabilised comparison)."""

    angle: float
    flip: bool
    x_rot: torch.Tensor
    x_up: torch.Tensor
    inspection: object
    upright: object
    orbit: OrbitResult


TurnedInputs = Callable[[Sequence[float]], torch.Tensor]
"""angles -> model inputs ``[A, 1, S, S]`` of the lens's scene turned by each angle and rendered."""


def _masked(x: torch.Tensor, mask: bool) -> torch.Tensor:
    return apply_circular_mask(x) if mask else x


def sky_orbit_of(loaded: LoadedModel, turned: TurnedInputs, scene_key, mask: bool = True,
                 steps: int | None = None) -> OrbitResult:
    """The orbit over turned *scenes* (each angle rendered, nothing resampled), cached per lens."""
    angles = orbit_angles(steps or settings.ORBIT_STEPS)
    key = ("sky-orbit", scene_key, mask, len(angles))
    return _cached(loaded, key, lambda: orbit_of_copies(loaded.model, _masked(turned(angles), mask), angles))


def move(loaded: LoadedModel, x: torch.Tensor, angle: float, flip: bool = False, mask: bool = True,
         lens_digest: str | None = None, attention: bool = True, upright: bool = True,
         turned: TurnedInputs | None = None, scene_key=None) -> Move:
    """The model work of one slider move: one inspected forward (with attention weights if
    ``attention``). The orbit is a cache lookup after the first move; so is the upright
    inspection (wanted with ``upright`` for the stabilised comparison), given the lens digest.

    ``turned`` (a simulated lens): turn the scene and render it instead of resampling the picture;
    the input at ``angle`` and every orbit point are then renderings (``scene_key`` names the lens
    in the cache). A mirror (D_N) stays a pixel flip of a rendering, which is exact."""
    if turned is None:
        result = orbit_of(loaded, x, mask=mask)
        x_rot = input_at(x, angle, mask=mask, flip=flip)
    else:
        result = sky_orbit_of(loaded, turned, scene_key, mask)
        # Mirror first, then turn (as input_at does): flip(turn(x, -a)) = turn(flip(x), a).
        x_rot = torch.flip(turned([-angle]), dims=[-1]) if flip else turned([angle])
        x_rot = _masked(x_rot, mask)
    x_up = input_at(x, 0.0, mask=mask)
    insp = inspect_at(loaded, x_rot, attention)
    straight = insp
    if upright and insp.group_channels and (angle or flip):
        key = ("upright", lens_digest, mask, tuple(x.shape))
        straight = (_cached(loaded, key, lambda: inspect_at(loaded, x_up, attention=False)) if lens_digest
                    else inspect_at(loaded, x_up, attention=False))
    return Move(angle, flip, x_rot, x_up, insp, straight, result)
