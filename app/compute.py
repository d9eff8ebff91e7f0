"""The server-side work of one slider move, over a shared cached model (no st.* here).

Every call that runs the model holds the model's lock: inspection and Grad-CAM attach hooks to
the shared module, which other sessions' threads must not see half-way.
"""

from __future__ import annotations

import copy
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from app import figures, settings
from app.catalog import LoadedModel
from eqlens.analysis import activations
from eqlens.analysis import attention as attention_lib
from eqlens.analysis import attribution as attribution_lib
from eqlens.analysis.orbit import OrbitResult, orbit, orbit_angles, orbit_of_copies, rotated_copies
from eqlens.data.transforms import apply_circular_mask
from eqlens.groups import rotate

MAX_CACHED_RESULTS = 128
# Pixels one batch of scrubber frames or attribution steps holds (12 frames at 81 px): a large model
# input (a card may ask for up to 512 px) runs fewer images per forward instead of gigabytes more.
BATCH_PIXELS = 12 * 81 * 81


def batch_for(x: torch.Tensor, most: int) -> int:
    """Images of ``x``'s side per forward: at most ``most``, within :data:`BATCH_PIXELS` (at least one)."""
    return max(1, min(int(most), BATCH_PIXELS // max(1, int(x.shape[-1]) * int(x.shape[-2]))))


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
                   target: int, layer: str | None = None, flip: bool = False, mask: bool = True) -> torch.Tensor:
    """``[H, W]`` attribution of the turned input, cached per (image, angle, method, target, layer,
    mask) in the model's own LRU. ``mask``: the input went through the circular mask, so the
    attribution is taken through it (the pixels outside get no gradient)."""
    key = ("attribution", lens_digest, round(float(angle), 6), flip, method, int(target), layer, bool(mask),
           tuple(x_rot.shape))

    def compute():
        most = 8 if settings.DEVICE == "cpu" else 64
        kw = {"n_steps": settings.IG_STEPS, "internal_batch_size": batch_for(x_rot, most)}
        return attribution_lib.attribute(loaded.model, x_rot.to(settings.device()), method, int(target),
                                         layer=layer, mask=mask, **kw)[0].cpu()

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


# ---- the orbit scrubbed in the browser ---------------------------------------------------------
#
# For one (model, lens, view) every panel of every orbit angle is computed here once, in batches
# (coarse to fine: the group's exact angles and every 45 deg first), encoded as small PNGs and
# handed to the browser whole; the browser swaps frames while the slider moves (app/components/scrub).

SCRUB_VIEWS = ("Attention", "Group channels", "Attributions")
# Integrated Gradients over the orbit, coarse to fine: every frame first at SCRUB_IG_STEPS Gauss-Legendre steps,
# then each frame whose completeness error (attribution.completeness_error) exceeds SCRUB_IG_TOLERANCE again at
# twice the steps, up to SCRUB_IG_MAX_STEPS (the precise angle below the scrubber takes settings.IG_STEPS).
SCRUB_IG_STEPS = min(settings.IG_STEPS, 8)
SCRUB_IG_MAX_STEPS = max(SCRUB_IG_STEPS, min(settings.IG_STEPS, 32))
SCRUB_IG_TOLERANCE = 0.05
# Occlusion over the orbit: a 3 x 3 grid of windows tiling the input (27 px at 81 px), 9 occlusions per frame.
SCRUB_OCCLUSION_CELLS = 3
# Frames at a + 90k deg are the frame at a turned by k quarter turns when the model is invariant and, measured
# on the first batch (the exact angles and every 45 deg, all computed), its attributions turn with the input to
# this relative error; else every frame is computed.
QUARTER_TURN_TOLERANCE = 1e-3
# CPU cost of a view's frame in plain forwards of the model (benchmarks/bench_app_scrub.py, the flagship; see
# docs/benchmarks_app.md): the cost estimate before a view has run for a model once.
FRAME_COST_IN_FORWARDS = {"Group channels": 1.0, "Attention": 2.0, "gradcam": 1.3, "saliency": 1.8,
                          "integrated_gradients": 15.0, "occlusion": 3.8}


@dataclass(frozen=True)
class ScrubView:
    """What the view panel of every frame shows (hashable: part of the cache key)."""

    kind: str  # one of SCRUB_VIEWS
    tap: str | None = None  # Group channels: the layer (tap) and field
    field: int = 0
    block: str | None = None  # Attention: the block and the query pixel (row, column) of the turned input
    row: int = 0
    col: int = 0
    method: str = "gradcam"  # Attributions: method, class and (Grad-CAM) layer
    target: int = 0
    layer: str | None = None


def available_views(loaded: LoadedModel) -> list[str]:
    """The views this model has: attention only with attention blocks, group channels only with a
    regular feature field; attributions always."""
    views = []
    if loaded.model.attention_modules():
        views.append("Attention")
    if any(t.kind == "group" for t in loaded.model.taps().values()):
        views.append("Group channels")
    return [*views, "Attributions"]


def scrub_angles(group, steps: int | None = None) -> np.ndarray:
    """Every ``360 / steps`` deg (default: every 5 deg) plus the group's exact rotation angles, sorted."""
    angles = {round(float(a), 6) for a in orbit_angles(steps or settings.ORBIT_STEPS)}
    angles |= {round(g.angle_deg % 360.0, 6) for g in group.elements if not g.flip}
    return np.array(sorted(angles), dtype=np.float64)


def fill_order(angles: np.ndarray, exact: Sequence[float], batch: int = 12) -> list[list[int]]:
    """Batches of angle indices, coarse to fine: 0 deg, the exact angles and every 45 deg first, then
    every 15 deg, then the rest (so a usable orbit shows after the first batch)."""
    def on(step):
        return [i for i, a in enumerate(angles) if abs((a + 1e-6) % step) < 1e-5]

    first = sorted(set(on(45.0)) | {i for i, a in enumerate(angles) if any(abs(a - e) < 1e-6 for e in exact)})
    second = [i for i in on(15.0) if i not in first]
    rest = [i for i in range(len(angles)) if i not in first and i not in second]
    batches = [first]
    for group in (second, rest):
        batches += [group[k:k + batch] for k in range(0, len(group), batch)]
    return [b for b in batches if b]


def turned_copies(x: torch.Tensor, angles: Sequence[float], mask: bool = True) -> torch.Tensor:
    """:func:`rotated_copies` with every resampled angle in one batched call (the 90-deg multiples
    stay exact rot90 copies): ``[1, 1, S, S] -> [A, 1, S, S]``."""
    x = x.reshape(1, 1, *x.shape[-2:])
    angles = [float(a) for a in angles]
    resampled = [i for i, a in enumerate(angles) if a % 90 != 0]
    out = torch.empty(len(angles), 1, *x.shape[-2:], dtype=x.dtype)
    for i, a in enumerate(angles):
        if a % 90 == 0:
            out[i] = rotate(x, a, mask=mask, supersample=2)[0]
    if resampled:
        turned = rotate(x.expand(len(resampled), -1, -1, -1), torch.tensor([angles[i] for i in resampled]),
                        mask=mask, supersample=2)
        out[resampled] = turned
    return out


def exact_turns(*groups) -> list[float]:
    """The rotation angles that turn pixels exactly (:attr:`eqlens.groups.Group.exact_turns_deg`) over the groups
    the models are turned by (``LoadedModel.group``: their own, or a plain model's probe group); a group with no
    turn but the identity (C1) is probed by :data:`eqlens.groups.DEFAULT_GROUP`'s, so an exact-turn measure of a
    plain model is never an empty 0."""
    return sorted({a for group in groups for a in turnable_group(group).exact_turns_deg})


def exact_turn_spread(loaded: LoadedModel, x: torch.Tensor, mask: bool = True) -> float:
    """The largest relative logit change over the picture's exact turns of the model's group (:func:`exact_turns`;
    an orbit of 4 angles, the quarter turns: the orbit's own when cached)."""
    return orbit_of(loaded, x, mask=mask, steps=4).exact_spread(turnable_group(loaded.group))


def turnable_group(group):
    """``group``, or :data:`eqlens.groups.DEFAULT_GROUP` when it has no exact turn but the identity (see
    :func:`exact_turns`). Not the package's probe group (``ModelCard.probe_group``, which ``LoadedModel.group``
    already is for a checkpoint): this only keeps an untrained C1 model's exact-turn measure from being empty."""
    from eqlens.groups import DEFAULT_GROUP, get_group

    group = get_group(group)
    return group if len(group.exact_turns_deg) > 1 else get_group(DEFAULT_GROUP)


def _nonflip_exact(group) -> list[float]:
    return [g.angle_deg % 360.0 for g in group.elements if not g.flip]


def _cost_key(view: ScrubView) -> str:
    return view.method if view.kind == "Attributions" else view.kind


def forward_seconds(loaded: LoadedModel, size: int) -> float:
    """Seconds of one plain forward per image of ``size`` px for this model, measured once (4 images, no grad)."""
    key = ("forward-seconds", int(size))

    def measure():
        x = torch.zeros(4, 1, size, size, device=settings.device())
        orbit_of_copies(loaded.model, x, np.zeros(4))  # warm up
        start = time.perf_counter()
        orbit_of_copies(loaded.model, x, np.zeros(4))
        return (time.perf_counter() - start) / 4

    return _cached(loaded, key, measure)


def estimate_seconds(loaded: LoadedModel, view: ScrubView, size: int, steps: int | None = None) -> tuple[float, str]:
    """``(seconds, how)``: what the whole orbit of ``view`` should take for this model, before it runs.

    From the seconds per frame of this view (method) the last complete orbit of this model took, when there is
    one (``how``: "measured"); else from this model's measured forward times the view's cost in forwards
    (:data:`FRAME_COST_IN_FORWARDS`; ``how``: "estimated")."""
    frames = len(scrub_angles(loaded.group, steps))
    with loaded.lock:
        measured = loaded.results.get(("scrub-seconds-per-frame", _cost_key(view), int(size)))
    if measured is not None:
        return measured * frames, "measured"
    return forward_seconds(loaded, size) * frames * FRAME_COST_IN_FORWARDS.get(_cost_key(view), 2.0), "estimated"


def about(seconds: float) -> str:
    """A duration for people: "about 3 s", "about 40 s", "about 2 min"."""
    if seconds < 1.0:
        return "under 1 s"
    if seconds < 90:
        return f"about {seconds:.0f} s"
    return f"about {seconds / 60:.0f} min"


class ScrubOrbit:
    """The frames of one (model, lens, view, mirror, mask, sky), filled batch by batch with :meth:`step`.

    A frame holds the model input (grey PNG), the view's panels (palette PNGs on one scale per
    orbit, fixed by the first batch), the logits and probabilities, and the view's number
    (stabilised distance or attribution invariance error).

    Attributions: one batched call per batch of frames (a target per row). For an invariant model whose
    attributions turn with the input under quarter turns (measured on the first batch: :data:`QUARTER_TURN_TOLERANCE`)
    the frame at ``a + 90k`` deg is the frame at ``a`` turned, so only a quarter of the frames are attributed;
    their logits are always the model's own. Integrated Gradients goes coarse to fine (:data:`SCRUB_IG_STEPS`)."""

    def __init__(self, loaded: LoadedModel, x: torch.Tensor, view: ScrubView, flip: bool = False, mask: bool = True,
                 turned: TurnedInputs | None = None, steps: int | None = None):
        self.loaded, self.x, self.view, self.flip, self.mask, self.turned = loaded, x, view, flip, mask, turned
        self.angles = scrub_angles(loaded.group, steps)
        self.exact = _nonflip_exact(loaded.group)
        self.batch = batch_for(x, 4 if view.kind == "Attention" else 12)
        self.batches = fill_order(self.angles, self.exact + [0.0], self.batch)
        self.batch_steps: list[int | None] = [None] * len(self.batches)  # IG steps of a refinement batch
        self.done = 0
        self.workers: set = set()  # who stepped it (sessions): for anyone else a complete orbit is cached
        self.full_seconds: float | None = None  # seconds until every frame was there (before IG refinement)
        self.quarter: bool | None = None  # frames derived by quarter turns (None: not decided yet)
        self.quarter_error: float | None = None
        self.steps: list[int | None] = [None] * len(self.angles)  # IG steps per frame
        self.completeness: list[float | None] = [None] * len(self.angles)  # IG completeness error per frame
        self._baseline_outputs: torch.Tensor | None = None
        self.reference_steps = 0  # IG steps of the upright reference
        self.backs: list[torch.Tensor | None] = [None] * len(self.angles)  # attributions rotated back
        self.frames: list[dict | None] = [None] * len(self.angles)
        self.lock = threading.Lock()
        self.seconds = 0.0
        self.first_seconds: float | None = None
        self.scale: tuple[float, float] | None = None
        self.reference: torch.Tensor | None = None  # the upright (unmirrored) features or attribution
        self.x_up = input_at(x, 0.0, mask=mask)
        self.error: str | None = None
        self.cell: tuple[int, int] | None = None  # (h, w) of one map of the view's panel
        self.heads: int | None = None

    @property
    def complete(self) -> bool:
        return self.done >= len(self.batches)

    @property
    def progress(self) -> float:
        return sum(f is not None for f in self.frames) / len(self.frames)

    def _inputs(self, angles: Sequence[float]) -> torch.Tensor:
        if self.turned is None:
            x = torch.flip(self.x, dims=[-1]) if self.flip else self.x
            return turned_copies(x, angles, mask=self.mask)
        if self.flip:  # mirror first, then turn: flip(turn(x, -a)) = turn(flip(x), a)
            x = torch.flip(self.turned([-a for a in angles]), dims=[-1])
        else:
            x = self.turned(list(angles))
        return _masked(x, self.mask)

    def step(self, worker=None) -> bool:
        """Compute the next batch of frames (thread-safe); True once every frame is there (and, for
        Integrated Gradients, refined). ``worker`` (e.g. a session's token) is remembered: see :meth:`cached_for`."""
        with self.lock:
            if self.complete:
                return True
            self.workers.add(worker)
            start = time.perf_counter()
            idx = self.batches[self.done]
            try:
                self._batch(idx, self.batch_steps[self.done])
            except (ValueError, RuntimeError) as exc:  # e.g. an attribution this model cannot give
                self.error = str(exc)
                self.done = len(self.batches)
                return True
            self.done += 1
            self.seconds += time.perf_counter() - start
            if self.first_seconds is None:
                self.first_seconds = self.seconds
            if self.done == 1 and self.quarter:
                self._regroup_by_quarter_turns()
            if self.full_seconds is None and all(f is not None for f in self.frames):
                self.full_seconds = self.seconds
            if self.done == len(self.batches):
                self._queue_refinement()
            if self.complete and self.error is None:
                with self.loaded.lock:
                    key = ("scrub-seconds-per-frame", _cost_key(self.view), int(self.x.shape[-1]))
                    self.loaded.results[key] = self.seconds / len(self.angles)
            return self.complete

    def cached_for(self, worker) -> bool:
        """True when the orbit is complete and ``worker`` computed none of it (it came from the cache)."""
        return self.complete and worker not in self.workers

    def _regroup_by_quarter_turns(self) -> None:
        """The batches after the first, as units ``{a, a + 90, a + 180, a + 270}`` (attributed once, at ``a``)."""
        rest = [i for b in self.batches[self.done:] for i in b]
        units: dict[float, list[int]] = {}
        for i in rest:
            units.setdefault(round(float(self.angles[i]) % 90.0, 6), []).append(i)
        groups, per = list(units.values()), max(1, self.batch // 4)
        regrouped = [sum(groups[k:k + per], []) for k in range(0, len(groups), per)]
        self.batches = self.batches[:self.done] + regrouped
        self.batch_steps = self.batch_steps[:self.done] + [None] * len(regrouped)

    def _queue_refinement(self) -> None:
        """Integrated Gradients: batches of the frames above :data:`SCRUB_IG_TOLERANCE`, at twice their steps."""
        if self.view.kind != "Attributions" or self.view.method != "integrated_gradients":
            return
        todo = [i for i, (err, n) in enumerate(zip(self.completeness, self.steps, strict=True))
                if err is not None and err > SCRUB_IG_TOLERANCE and n < SCRUB_IG_MAX_STEPS]
        units: dict = {}
        for i in todo:  # with quarter turns a unit {a, a + 90, ...} is attributed once and its copies follow
            unit = round(float(self.angles[i]) % 90.0, 6) if self.quarter and i not in self.batches[0] else i
            units.setdefault(unit, []).append(i)
        if self.quarter:
            for unit, members in units.items():
                if isinstance(unit, float):
                    members[:] = [i for i in range(len(self.angles)) if i not in self.batches[0]
                                  and abs(float(self.angles[i]) % 90.0 - unit) < 1e-6]
        groups = sorted(units.values(), key=len)  # single frames (the first batch's) together
        chunks, chunk = [], []
        for members in groups:
            if chunk and len(chunk) + len(members) > self.batch:
                chunks.append(chunk)
                chunk = []
            chunk = chunk + members
        chunks += [chunk] if chunk else []
        for chunk in chunks:
            self.batches.append(sorted(chunk))
            self.batch_steps.append(min(SCRUB_IG_MAX_STEPS, 2 * max(self.steps[i] or SCRUB_IG_STEPS for i in chunk)))

    @property
    def refining(self) -> bool:
        """Every frame is there and Integrated Gradients is refining some of them."""
        return self.full_seconds is not None and not self.complete

    def summary(self, worker, payload_mb: float) -> str:
        """The caption under a complete orbit: computed for ``worker`` (with its time) or cached."""
        what = f"{len(self.angles)} frames of the {self.view.kind.lower()} view"
        if self.cached_for(worker):
            return (f"{what}, cached: computed earlier on the server (in {self.seconds:.2f} s), no model work now; "
                    f"sent once ({payload_mb:.2f} MB) and swapped in your browser while the slider moves or Play runs")
        return (f"{what}, computed on the server in {self.seconds:.2f} s (first frames in "
                f"{self.first_seconds or 0:.2f} s), sent once ({payload_mb:.2f} MB) and swapped in your browser "
                "while the slider moves or Play runs")

    def detail(self) -> str:
        """How the view's maps were made over the orbit (for the panel's title)."""
        view = self.view
        if view.kind != "Attributions":
            return ""
        parts = []
        if view.method == "integrated_gradients":
            steps = [n for n in self.steps if n is not None]
            errors = [e for e in self.completeness if e is not None]
            if steps:
                span = f"{min(steps)}" if min(steps) == max(steps) else f"{min(steps)}-{max(steps)}"
                parts.append(f"{span} Gauss-Legendre steps per frame, completeness error |ΣA - (f(x) - f(0))| / "
                             f"|f(x) - f(0)| at most {max(errors):.1%} (median {float(np.median(errors)):.1%}; "
                             f"frames above {SCRUB_IG_TOLERANCE:.0%} are refined up to {SCRUB_IG_MAX_STEPS} steps)")
        elif view.method == "occlusion":
            window, _ = attribution_lib.occlusion_grid(int(self.x.shape[-1]), SCRUB_OCCLUSION_CELLS)
            parts.append(f"a {SCRUB_OCCLUSION_CELLS} x {SCRUB_OCCLUSION_CELLS} grid of {window}-px windows over "
                         "the orbit (the precise angle below uses finer ones)")
        if self.quarter:
            parts.append(f"frames at a + 90k deg are the frame at a turned (checked at the exact angles: "
                         f"{self.quarter_error:.1e})")
        return "".join(", " + p for p in parts)

    def _batch(self, idx: list[int], steps: int | None = None) -> None:
        angles = [float(self.angles[i]) for i in idx]
        x_rot = self._inputs(angles)
        first = self.reference is None
        if self.view.kind == "Attributions":
            self._attribution_batch(idx, angles, x_rot, first, steps)
            return
        batch = torch.cat([x_rot, self.x_up]) if first else x_rot  # the upright reference rides along once
        view = self.view
        device = settings.device()
        with self.loaded.lock, torch.no_grad():
            insp = self.loaded.model.inspect(batch.to(device), attention=view.kind == "Attention")
        logits = insp.logits.float().cpu()[: len(idx)]
        probs = torch.softmax(logits, dim=-1)
        panels, metrics = self._view_panels(insp, batch, x_rot, angles, first)
        for k, i in enumerate(idx):
            self.frames[i] = {
                "input": figures.encode_map(x_rot[k, 0].numpy(), 0.0, 1.0),
                "panels": panels[k],
                "logits": [round(float(v), 7) for v in logits[k]],
                "probs": [round(float(v), 8) for v in probs[k]],
                "metric": metrics[k],
            }

    def _view_panels(self, insp, batch, x_rot, angles, first):
        view, n = self.view, len(angles)
        if view.kind == "Group channels":
            # Only the chosen field is stabilised and compared: rotating every field back was most
            # of the orbit's cost. The distance is the field's, |stab - upright| / |upright|.
            feats = insp.group_channels[view.tap][:, view.field:view.field + 1].cpu()
            if first:
                self.reference = feats[n:]
            feats = feats[:n]
            self.cell = tuple(feats.shape[-2:])
            maps, stabilised, metrics = [], [], []
            for k, a in enumerate(angles):
                maps.append(feats[k, 0])
                try:
                    steady = activations.stabilise(feats[k:k + 1], self.loaded.group, a, self.flip)
                    err = float((steady - self.reference).norm() / self.reference.norm().clamp_min(1e-12))
                    stabilised.append(steady[0, 0])
                except ValueError:  # a mirror with an angle between group elements: no stabilised view
                    stabilised.append(None)
                    err = None
                metrics.append(err)
            if self.scale is None:
                values = torch.cat([m.reshape(-1) for m in maps + [s for s in stabilised if s is not None]])
                lo, hi = float(values.min()), float(values.max())
                self.scale = (lo, hi if hi > lo else lo + 1e-6)
            lo, hi = self.scale
            panels = []
            for m, s in zip(maps, stabilised, strict=True):
                frame = {"channels": figures.encode_map(figures.sprite(m.numpy()), lo, hi, "magma")}
                if s is not None:
                    frame["stabilised"] = figures.encode_map(figures.sprite(s.numpy()), lo, hi, "magma")
                panels.append(frame)
            return panels, metrics
        if view.kind == "Attention":
            size = x_rot.shape[-1]
            atts = {k: _cpu_attention(v, n) for k, v in insp.attention.items()}
            att = atts[view.block]
            self.heads = att.weights.shape[1]
            point, hw = (view.row, view.col), (size, size)
            maps = [attention_lib.query_map(att, point, hw)]
            maps += [attention_lib.query_map(att, point, hw, head=h) for h in range(att.weights.shape[1])]
            maps.append(attention_lib.rollout_map(list(atts.values()), point, hw))
            panels = []
            for k in range(n):
                cells = [m[k] / m[k].max().clamp_min(1e-12) for m in maps]
                panels.append({"maps": figures.encode_map(figures.sprite([c.numpy() for c in cells]), 0.0, 1.0,
                                                           "viridis")})
            return panels, [None] * n
        raise ValueError(f"unknown view {view.kind!r}")

    def _quarter_candidate(self) -> bool:
        return (self.turned is None and bool(getattr(self.loaded.model, "invariant", False))
                and 90.0 in turnable_group(self.loaded.group).exact_turns_deg)

    def _sources(self, idx: list[int], angles: list[float]) -> list[tuple[int, int]]:
        """For each frame of a batch: (the row attributed for it, its quarter turns from that row). Without
        quarter turns every frame is its own row; so is every frame of the first batch (the exact angles and
        every 45 deg), so their invariance errors are always measured."""
        first = set(self.batches[0])
        out = []
        for k, (i, a) in enumerate(zip(idx, angles, strict=True)):
            base = next((j for j, b in enumerate(angles) if abs(b - a % 90.0) < 1e-6), None)
            derive = self.quarter and i not in first and base is not None
            out.append((base, int(round((a - angles[base]) / 90.0))) if derive else (k, 0))
        return out

    def _attribute(self, x: torch.Tensor, steps: int) -> torch.Tensor:
        """One batched attribution call over the rows ``x [N, 1, S, S]`` (the view's class for every row)."""
        view, size = self.view, int(x.shape[-1])
        most = 16 if settings.DEVICE == "cpu" else 64
        window, stride = attribution_lib.occlusion_grid(size, SCRUB_OCCLUSION_CELLS)
        # Integrated Gradients: many (row, step) pairs per forward; Occlusion: every window of a row per forward.
        kw = {"n_steps": steps, "internal_batch_size": 4 * batch_for(x, most), "window": window,
              "stride": stride, "perturbations_per_eval": SCRUB_OCCLUSION_CELLS ** 2}
        target = torch.full((x.shape[0],), int(view.target), dtype=torch.long)
        with self.loaded.lock:
            return attribution_lib.attribute(self.loaded.model, x.to(settings.device()), view.method,
                                             target.to(settings.device()), layer=view.layer, mask=self.mask,
                                             **kw).cpu()

    def _attribution_batch(self, idx, angles, x_rot, first, steps) -> None:
        """Attributions: the turned input's and the same rotated back into the upright frame."""
        view, n = self.view, len(idx)
        steps = steps or SCRUB_IG_STEPS
        # The upright reference rides along once, and again with the first batch of finer IG steps.
        fresh = first or steps > self.reference_steps
        with self.loaded.lock:  # the model's own logits at every frame, derived or not
            logits = torch.as_tensor(orbit_of_copies(self.loaded.model, x_rot.to(settings.device()),
                                                     np.zeros(n)).logits)
        sources = self._sources(idx, angles)
        rows = sorted({j for j, _ in sources})
        attr_rows = self._attribute(torch.cat([x_rot[rows], self.x_up]) if fresh else x_rot[rows], steps)
        if fresh:
            self.reference, self.reference_steps = attr_rows[len(rows):], steps
            attr_rows = attr_rows[:len(rows)]
        by_row = dict(zip(rows, attr_rows, strict=True))
        attr = torch.stack([rotate(by_row[j][None, None], 90.0 * k)[0, 0] if k else by_row[j] for j, k in sources])
        if first and self.quarter is None:
            self._check_quarter_turns(angles, attr)
        if view.method == "integrated_gradients":
            if self._baseline_outputs is None:
                with self.loaded.lock:
                    zero = torch.zeros_like(self.x_up)
                    self._baseline_outputs = torch.as_tensor(
                        orbit_of_copies(self.loaded.model, zero.to(settings.device()), np.zeros(1)).logits)[0]
            errors = attribution_lib.completeness_error(attr, logits[:n], self._baseline_outputs, int(view.target))
            for k, i in enumerate(idx):
                self.steps[i], self.completeness[i] = steps, float(errors[k])
        back = torch.cat([attribution_lib.rotate_back(attr[k:k + 1], a, self.flip) for k, a in enumerate(angles)])
        if self.scale is None:  # a percentile of |A|: a few outlier pixels do not wash the rest out
            peak = attribution_lib.display_limit(attr, back, self.reference)
            self.scale = (-peak, peak)
        lo, hi = self.scale
        probs = torch.softmax(logits[:n], dim=-1)
        for k, i in enumerate(idx):
            self.backs[i] = back[k:k + 1]
        if fresh and not first:  # a finer reference: every frame's invariance error against it
            for i, frame in enumerate(self.frames):
                if frame is not None and i not in idx:
                    frame["metric"] = self._invariance_error(i)
        for k, i in enumerate(idx):
            metric = self._invariance_error(i)
            self.frames[i] = {
                "input": figures.encode_map(x_rot[k, 0].numpy(), 0.0, 1.0),
                "panels": {"maps": figures.encode_map(figures.sprite([attr[k].numpy(), back[k].numpy()]), lo, hi,
                                                      "RdBu_r")},
                "logits": [round(float(v), 7) for v in logits[k]],
                "probs": [round(float(v), 8) for v in probs[k]],
                "metric": metric,
            }

    def _invariance_error(self, i: int) -> float:
        exact = abs(float(self.angles[i]) % 90) < 1e-9
        return attribution_lib.attribution_invariance_error(self.reference, self.backs[i], exact=exact)

    def _check_quarter_turns(self, angles: list[float], attr: torch.Tensor) -> None:
        """Decide :attr:`quarter` on the first batch (all computed): does each frame at ``a + 90k`` equal the frame
        at ``a`` turned by ``k`` quarter turns, to :data:`QUARTER_TURN_TOLERANCE`?"""
        self.quarter = False
        if not self._quarter_candidate():
            return
        errors = []
        for k, a in enumerate(angles):
            base = next((j for j, b in enumerate(angles) if abs(b - a % 90.0) < 1e-6), None)
            if base is None or base == k:
                continue
            turned = rotate(attr[base][None, None], a - angles[base])[0, 0]
            errors.append(float((attr[k] - turned).norm() / attr[base].norm().clamp_min(1e-12)))
        if errors:
            self.quarter_error = max(errors)
            self.quarter = self.quarter_error < QUARTER_TURN_TOLERANCE

    def payload(self) -> dict:
        """Everything the browser needs for the frames there are so far (JSON-ready)."""
        return {"angles": [float(a) for a in self.angles], "exact": self.exact, "frames": self.frames,
                "scale": self.scale, "progress": self.progress, "complete": self.complete,
                "seconds": round(self.seconds, 3), "error": self.error}


def _cpu_attention(att, n: int):
    """An attention map's first ``n`` images, on the CPU (the batch may carry the upright copy too)."""
    att = copy.copy(att)
    att.weights = att.weights[:n].cpu()
    return att


def scrub_orbit(loaded: LoadedModel, x: torch.Tensor, view: ScrubView, lens_digest: str, flip: bool = False,
                mask: bool = True, turned: TurnedInputs | None = None, scene_key=None) -> ScrubOrbit:
    """The (possibly half-filled) frames of this (model, lens, view), from the model's shared cache:
    made once, filled by whoever calls :meth:`ScrubOrbit.step`; never recomputed on a slider move."""
    key = ("scrub", lens_digest, scene_key if turned is not None else None, view, bool(flip), bool(mask),
           tuple(x.shape), settings.ORBIT_STEPS)
    return _cached(loaded, key, lambda: ScrubOrbit(loaded, x, view, flip, mask, turned))
