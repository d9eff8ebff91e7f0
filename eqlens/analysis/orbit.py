"""Model outputs over the whole orbit of rotation angles, in one batched forward, cached.

``orbit(model, x, angles)`` rotates one prepared image ``[1, 1, H, W]`` (or ``[H, W]``) by every
angle (exact rot90 at 90-deg multiples, supersampled bilinear otherwise; optionally inside the
inscribed disk so every angle sees the same pixels), stacks the copies into ``[A, 1, H, W]`` and
runs the model once. For an invariant model the logits are flat at the group's exact angles.
The result is kept in a small LRU cache keyed by the model's identity, the image bytes and the
angles, so a slider reading the orbit is a lookup.
"""

from __future__ import annotations

import hashlib
import threading
import weakref
from collections import OrderedDict
from dataclasses import dataclass

import numpy as np
import torch

from ..groups import Group, get_group, rotate
from ..models.inspection import eval_mode
from .equivariance import relative_error


@dataclass(frozen=True)
class OrbitResult:
    """``angles [A]`` (deg), ``logits [A, K]``, ``probabilities [A, K]`` (softmax), on the CPU."""

    angles: np.ndarray
    logits: np.ndarray
    probabilities: np.ndarray

    def nearest(self, angle_deg: float) -> int:
        """Index of the orbit angle closest to ``angle_deg`` (on the circle)."""
        diff = (self.angles - angle_deg + 180.0) % 360.0 - 180.0
        return int(np.argmin(np.abs(diff)))

    def exact_spread(self, group: Group | str) -> float:
        """Largest logit change across the group's pixel-exact angles that lie on the orbit
        (0 for an exactly invariant model): ``max |f(g x) - f(x)| / |f(x)|``."""
        group = get_group(group)
        exact = [g.angle_deg for g in group.elements if g.is_exact_on_pixels and not g.flip]
        rows = [i for i, a in enumerate(self.angles) if any(abs(a - e) < 1e-9 for e in exact)]
        if not rows or not np.isclose(self.angles[rows[0]], 0.0):
            raise ValueError("the orbit must contain 0 deg and the group's exact angles")
        logits = torch.as_tensor(np.asarray(self.logits)[rows])
        return float(relative_error(logits, logits[:1].expand_as(logits)).max())


def orbit_angles(steps: int = 72) -> np.ndarray:
    """``steps`` equally spaced angles in [0, 360) deg (72 steps: every 5 deg, holding every
    multiple of 45 and 90)."""
    return np.arange(steps, dtype=np.float64) * (360.0 / steps)


def rotated_copies(x: torch.Tensor, angles, mask: bool = True, supersample: int = 2) -> torch.Tensor:
    """``[1, 1, H, W]`` (or ``[H, W]``) -> ``[A, 1, H, W]``, one copy per angle."""
    x = x.reshape(1, 1, *x.shape[-2:])
    copies = [rotate(x, float(a), mask=mask, supersample=supersample) for a in angles]
    return torch.cat(copies, dim=0)


# Pixels one orbit forward takes at most (``batch_size=None``): a 72-angle orbit at 81 px (473k) is one
# forward; a 512 px model's is one or two copies at a time (all 73 at once took 17 GB for a gcnn).
ORBIT_BATCH_PIXELS = 1 << 19


def orbit_batch_size(height: int, width: int, budget: int | None = None) -> int:
    """Copies of ``height x width`` pixels per forward within ``budget`` pixels (default
    :data:`ORBIT_BATCH_PIXELS`; at least one)."""
    budget = ORBIT_BATCH_PIXELS if budget is None else budget
    return max(1, int(budget) // max(1, int(height) * int(width)))


def compute_orbit(model, x: torch.Tensor, angles, mask: bool = True, supersample: int = 2,
                  batch_size: int | None = None) -> OrbitResult:
    """Logits and probabilities of ``model`` over every rotation of ``x``, one forward per batch
    (``batch_size=None``: :func:`orbit_batch_size`, as many as :data:`ORBIT_BATCH_PIXELS` allows). Runs in
    eval mode (the model's mode is restored)."""
    device = next(iter(model.parameters())).device
    return orbit_of_copies(model, rotated_copies(x.to(device), angles, mask, supersample), angles, batch_size)


def orbit_of_copies(model, copies: torch.Tensor, angles, batch_size: int | None = None) -> OrbitResult:
    """The orbit of ready copies ``[A, 1, H, W]``, copy ``a`` being the lens at ``angles[a]``: e.g. the
    scene turned and rendered again (``SimulatedLensDataset.turned_batch``), which keeps the pixel
    noise that resampling a picture would smooth. Runs in eval mode (the model's mode is restored).
    ``batch_size=None``: :func:`orbit_batch_size` of the copies' side, so memory stays bounded at any size."""
    angles = np.asarray(angles, dtype=np.float64)
    if copies.dim() != 4 or copies.shape[0] != len(angles):
        raise ValueError(f"need one copy [A, 1, H, W] per angle ({len(angles)}), got {tuple(copies.shape)}")
    copies = copies.to(next(iter(model.parameters())).device)
    if batch_size is None:
        batch_size = orbit_batch_size(*copies.shape[-2:])
    chunks = list(copies.split(batch_size))
    with eval_mode(model), torch.no_grad():
        logits = torch.cat([model(chunk) for chunk in chunks]).float().cpu()
    return OrbitResult(angles, logits.numpy(), torch.softmax(logits, dim=-1).numpy())


class OrbitCache:
    """Thread-safe LRU of :class:`OrbitResult` per (model, image, angles, options).

    Models are held weakly: a model that is dropped elsewhere drops its entries."""

    def __init__(self, max_entries: int = 64):
        self.max_entries = max_entries
        self._entries: OrderedDict = OrderedDict()
        self._models: weakref.WeakValueDictionary = weakref.WeakValueDictionary()
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    @staticmethod
    def _key(model, x: torch.Tensor, angles, mask: bool, supersample: int):
        digest = hashlib.sha1(x.detach().float().cpu().contiguous().numpy().tobytes()).hexdigest()
        return (id(model), digest, tuple(np.round(np.asarray(angles, dtype=np.float64), 9)), mask, supersample)

    def get(self, model, x: torch.Tensor, angles, mask: bool = True, supersample: int = 2) -> OrbitResult:
        key = self._key(model, x, angles, mask, supersample)
        with self._lock:
            alive = self._models.get(id(model)) is model
            if alive and key in self._entries:
                self.hits += 1
                self._entries.move_to_end(key)
                return self._entries[key]
        result = compute_orbit(model, x, angles, mask, supersample)
        with self._lock:
            self.misses += 1
            self._models[id(model)] = model
            self._entries[key] = result
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)
        return result


_DEFAULT_CACHE = OrbitCache()


def orbit(model, x: torch.Tensor, angles=None, mask: bool = True, supersample: int = 2,
          cache: OrbitCache | None = None) -> OrbitResult:
    """Cached :func:`compute_orbit` (default angles: every 5 deg)."""
    angles = orbit_angles() if angles is None else angles
    return (cache or _DEFAULT_CACHE).get(model, x, angles, mask, supersample)
