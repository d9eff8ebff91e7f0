"""Train once, evaluate many: each checkpoint scored on its own test split and on every named shift.

    report = evaluate_shifts(["checkpoints/gcnn", "checkpoints/cnn"], shifts="all", size=1000)
    print(markdown_report(report))

Per checkpoint the training config comes from its card (a simulation config name, or the full
config under ``card["data"]["simulation_config"]``); checkpoints trained on a folder need ``base``.
Every shift's test images are the ``test`` stream of the checkpoint's ``data_seed`` (never seen in
training), rendered once per (shift, training config, input size) and shared by the checkpoints
that agree on those, then scored with the checkpoint's own input mask (the ``orientation`` shift
masks every turned copy, as :func:`eqlens.analysis.equivariance.predictions_over_angles` does).

Rows (``report["rows"]``, one per checkpoint and shift, the unshifted ``"none"`` first):
``label, source, model, group, augment, shift, n, accuracy, accuracy_se, auc_macro, accuracy_drop, auc_drop``
(drops are the unshifted value minus the shifted one; ``accuracy_se`` the binomial standard error), and
for the simulation shifts ``correct`` (per lens) and ``lenses`` (a key of the test lenses, for paired
tests); ``orientation`` and ``orientation_sky`` rows
add ``angles_deg``, ``accuracy_by_angle`` and ``worst_angle_accuracy``, their ``accuracy`` being the
mean over the angles and ``auc_macro`` the macro AUC of all turned copies pooled (:func:`angle_scores`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..analysis.equivariance import DEFAULT_ANGLES
from ..checkpoint.card import ModelCard
from ..errors import DataError
from ..simulation import SimulationConfig, get_config
from .shifts import NONE, ORIENTATION, ORIENTATION_SKY, ROTATIONS, get_shift, parse_shifts, shifted_config
from .statistics import binomial_se, mcnemar

TWINS = (("gcnn", "cnn"), ("eqcvt_inv", "cvt"))
"""(equivariant model, its plain twin): the pairs the orientation summary compares."""


@dataclass
class LoadedCheckpoint:
    """A model ready for scoring, with what its card says about its inputs and training data."""

    label: str
    source: str
    model: torch.nn.Module
    card: ModelCard
    base: SimulationConfig
    image_size: int
    mask: bool
    data_seed: int
    augment: bool | None
    crop: int | None = None  # the card's native central crop before resizing

    @property
    def model_name(self) -> str:
        return self.card.name


def training_config(data: Mapping, base: str | SimulationConfig | None = None) -> SimulationConfig:
    """The simulation config a checkpoint was trained on, from its card's ``data`` record: ``base`` if
    given, else the recorded ``simulation_config`` (a card without one: the named config with the line vortex
    of its day, :func:`eqlens.data.splits.data_simulation_config`). Raises :class:`DataError` for folder data."""
    from ..data.splits import data_simulation_config

    if base is not None:
        return get_config(base)
    spec = data.get("spec")
    try:
        config = data_simulation_config({"kind": "simulated", **data})
    except DataError:
        config = None
    if config is None:
        raise DataError(f"checkpoint was trained on {spec!r}, not a simulation config: shifts are built from "
                        f"the simulator; pass the closest config as base (e.g. model_i)")
    return config


def load_for_shifts(sources: Sequence, device, base: str | SimulationConfig | None = None) -> list[LoadedCheckpoint]:
    """Load every checkpoint on ``device``; labels are model names, with the path added where two clash."""
    from ..checkpoint import load_checkpoint

    loaded = []
    for source in sources:
        model, card = load_checkpoint(source, device=device)
        trained = card.training.get("config", {})
        loaded.append(LoadedCheckpoint(
            label=card.name, source=str(source), model=model, card=card,
            base=training_config(card.data, base),
            image_size=card.input.image_size,
            mask=card.input.circular_mask,
            data_seed=int(card.data.get("data_seed", 0)),
            augment=trained.get("augment"),
            crop=card.input.crop,
        ))
    names = [c.label for c in loaded]
    for c in loaded:
        if names.count(c.label) > 1:
            c.label = f"{c.label} [{Path(c.source).name}]"
    return loaded


def render_test_split(config: SimulationConfig, size: int, image_size: int, data_seed: int, device,
                      crop: int | None = None):
    """The ``size`` first images of the test stream of ``config``, rendered once: items
    ``([1, S, S], label i % K)``."""
    from ..data.simulated import SimulatedLensDataset

    return SimulatedLensDataset(config, split="test", size=size, seed=data_seed, image_size=image_size,
                                device=device, cache=True, crop=crop)


def fitted_crop(base: SimulationConfig, shifted: SimulationConfig, crop: int | None) -> tuple[int | None, str | None]:
    """The native crop to take from images of ``shifted`` for a card whose ``crop`` was cut from ``base``'s
    images, and a note saying what was done (None: nothing changed).

    The same pixels when the pixel scale is unchanged and the crop fits; otherwise the same field of view
    in arcsec, in whole pixels of ``shifted`` centred on its grid (``H - crop`` even), which the dataset
    then resizes to the model's input. Raises :class:`DataError` when even that field does not fit."""
    if crop is None or (shifted.pixel_scale == base.pixel_scale and crop <= shifted.image_size):
        return crop, None
    field = crop * base.pixel_scale
    side = shifted.image_size
    pixels = side % 2 + 2 * round((field / shifted.pixel_scale - side % 2) / 2)
    if not 1 <= pixels <= side:
        raise DataError(f"the card's {crop} px crop ({field:.2f}\") does not fit the {side} px "
                        f"({side * shifted.pixel_scale:.2f}\") images of {shifted.name}")
    return pixels, (f"the card's {crop} px crop of {base.pixel_scale:g}\" pixels ({field:.2f}\") taken as the "
                    f"central {pixels} px of {shifted.pixel_scale:g}\" ({pixels * shifted.pixel_scale:.2f}\"), "
                    f"resized to the model's input")


def lenses_key(config: SimulationConfig, data_seed: int, size: int) -> str:
    """A short digest naming the test lenses of a row: rows with equal keys scored the same lenses and noise
    (the same config but for its name, the same stream and size), whatever each model's crop or input size."""
    import hashlib
    import json

    record = {k: v for k, v in config.to_dict().items() if k != "name"}
    text = json.dumps([record, int(data_seed), int(size)], sort_keys=True, default=list)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def score(ckpt: LoadedCheckpoint, dataset, batch_size: int, device) -> dict:
    """``{"n", "accuracy", "accuracy_se", "auc_macro", "correct"}`` of the checkpoint on ``dataset`` (its own
    input mask); ``correct``: one bool per lens, in order, for paired tests (:func:`paired_tests`)."""
    from ..evaluation.classification import evaluate_model

    report = evaluate_model(ckpt.model, dataset, list(ckpt.card.class_names), batch_size=batch_size, device=device,
                            mask=ckpt.mask, robustness_size=0, with_predictions=True, with_roc=False)
    accuracy = report["accuracy"]
    return {"n": report["n"], "accuracy": accuracy, "accuracy_se": binomial_se(accuracy, report["n"]),
            "auc_macro": report["auc_macro"], "correct": [p["correct"] for p in report["predictions"]]}


def angle_scores(probs: torch.Tensor, labels: torch.Tensor, angles: Sequence[float]) -> dict:
    """Summary of class probabilities ``[A, n, K]`` of ``n`` images at ``A`` angles: ``n``, ``angles_deg``,
    ``accuracy_by_angle``, ``worst_angle_accuracy``, ``accuracy`` (mean over angles) and ``auc_macro``
    (all copies pooled)."""
    from ..evaluation.metrics import accuracy, macro_auc

    probs, labels = probs.double().cpu(), labels.reshape(-1).cpu()
    by_angle = [accuracy(p, labels) for p in probs]
    return {
        "n": int(labels.numel()),
        "angles_deg": [float(a) for a in angles],
        "accuracy_by_angle": by_angle,
        "worst_angle_accuracy": float(min(by_angle)),
        "accuracy": float(np.mean(by_angle)),
        # the copies of one lens are correlated: the s.e. of one angle's accuracy, not smaller
        "accuracy_se": binomial_se(float(np.mean(by_angle)), int(labels.numel())),
        "auc_macro": macro_auc(probs.reshape(-1, probs.shape[-1]), labels.repeat(len(by_angle))),
    }


def score_orientation(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, angles: Iterable[float],
                      batch_size: int = 64) -> dict:
    """:func:`angle_scores` of ``model`` on ``x [n, 1, S, S]`` turned by each angle, every copy cut to the
    inscribed disk (:func:`eqlens.analysis.equivariance.predictions_over_angles`; ``accuracy_by_angle``
    are the values of ``accuracy_over_angles``)."""
    from ..analysis.equivariance import predictions_over_angles

    angles = [float(a) for a in angles]
    return angle_scores(predictions_over_angles(model, x, angles, batch_size=batch_size), y, angles)


def probabilities(ckpt: LoadedCheckpoint, x: torch.Tensor, batch_size: int = 64) -> torch.Tensor:
    """Class probabilities ``[n, K]`` (CPU) of the checkpoint on model-sized images ``x [n, 1, S, S]``
    (:func:`eqlens.checkpoint.predict`: masked as its card says)."""
    from torch.utils.data import TensorDataset

    from ..checkpoint import predict

    items = TensorDataset(x.cpu(), torch.zeros(x.shape[0], dtype=torch.long))
    return predict(ckpt.model, ckpt.card, items, batch_size=batch_size).values


def score_sky_orientation(members: Sequence[LoadedCheckpoint], config: SimulationConfig, size: int,
                          image_size: int, data_seed: int, angles: Sequence[float], batch_size: int,
                          device, crop: int | None = None) -> dict[str, dict]:
    """:func:`angle_scores` of each checkpoint on the first ``size`` test scenes turned by each angle and
    rendered (:meth:`eqlens.data.SimulatedLensDataset.turned_batch`), each fed with its own input mask.
    The images of one angle are rendered once for all ``members``; returns ``label -> scores``."""
    from ..data.simulated import SimulatedLensDataset

    test = SimulatedLensDataset(config, split="test", size=size, seed=data_seed, image_size=image_size, device=device,
                                crop=crop)
    probs: dict[str, list[torch.Tensor]] = {c.label: [] for c in members}
    labels = None
    for angle in angles:
        parts = [test.turned_batch(range(start, min(start + batch_size, size)), float(angle))
                 for start in range(0, size, batch_size)]
        x, labels = torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts])
        for c in members:
            probs[c.label].append(probabilities(c, x, batch_size))
    return {label: angle_scores(torch.stack(p), labels, angles) for label, p in probs.items()}


def _row(ckpt: LoadedCheckpoint, shift: str, scores: dict) -> dict:
    return {"label": ckpt.label, "source": ckpt.source, "model": ckpt.model_name, "group": ckpt.card.group,
            "augment": ckpt.augment, "shift": shift, **scores}


def evaluate_shifts(checkpoints: Sequence, shifts: str | Iterable[str] = "all", *, size: int = 1000,
                    device="auto", batch_size: int = 64, angles: Iterable[float] = DEFAULT_ANGLES,
                    base: str | SimulationConfig | None = None, progress_bar: bool = False) -> dict:
    """Score every checkpoint on its unshifted test split and on each of ``shifts`` (module docstring).

    ``size``: test images per shift; ``angles``: the orientation shift's angles (deg); ``base``: the
    training config to shift, for checkpoints whose card does not name one. A shift that leaves a
    checkpoint's config unchanged (``model_ii_resized`` of a Model II checkpoint), or does not apply to it
    (theta_E +-1 % of a population that already draws theta_E, a population of other classes, a field of
    view the card's crop does not fit) is skipped and listed under ``report["skipped"]`` with the reason.
    A crop checkpoint meets images of other pixels with its crop's field of view in arcsec, resized
    (:func:`fitted_crop`; the row's ``input_note`` says so). Rows carry ``accuracy_se`` (binomial),
    ``correct`` (per lens, for :func:`paired_tests`) and ``lenses`` (equal keys: the same test lenses).
    Returns ``{"settings", "shifts", "configs", "rows", "skipped"}``."""
    from ..core.distributed import resolve_device

    if size < 1:
        raise DataError(f"size must be at least 1, got {size}")
    names = [NONE] + [s for s in parse_shifts(shifts) if s != NONE]
    angles = [float(a) for a in angles]
    device = resolve_device(device) if isinstance(device, str) else torch.device(device)
    loaded = load_for_shifts(checkpoints, device, base)
    groups: dict[tuple, list[LoadedCheckpoint]] = {}
    for c in loaded:  # checkpoints that can share rendered test images
        groups.setdefault((c.base, c.image_size, c.data_seed, c.crop), []).append(c)
    rows, skipped = {}, []
    bar = _progress(len(names) * len(loaded), progress_bar)
    for shift in names:
        for (config, image_size, seed, crop), members in groups.items():
            reason = _not_run(shift, config, crop)
            if reason:
                skipped.extend({"label": c.label, "shift": shift, "reason": reason} for c in members)
                _advance(bar, len(members))
                continue
            if shift == ORIENTATION_SKY:
                scores = score_sky_orientation(members, config, size, image_size, seed, angles, batch_size, device,
                                               crop)
                rows.update({(c.label, shift): _row(c, shift, scores[c.label]) for c in members})
                _advance(bar, len(members))
                continue
            shifted = shifted_config(config, shift)
            native_crop, note = fitted_crop(config, shifted, crop)
            dataset = render_test_split(shifted, size, image_size, seed, device, native_crop)
            extra = {"lenses": lenses_key(shifted, seed, size), **({"input_note": note} if note else {})}
            for c in members:
                if shift == ORIENTATION:
                    x, y = dataset.batch(range(len(dataset)))
                    scores = score_orientation(c.model, x, y, angles, batch_size)
                else:
                    scores = score(c, dataset, batch_size, device)
                rows[(c.label, shift)] = _row(c, shift, {**scores, **extra})
                _advance(bar, 1)
    if bar is not None:
        bar.close()
    ordered = [rows[(c.label, s)] for c in loaded for s in names if (c.label, s) in rows]
    for row in ordered:
        reference = rows[(row["label"], NONE)]
        row["accuracy_drop"] = reference["accuracy"] - row["accuracy"]
        row["auc_drop"] = reference["auc_macro"] - row["auc_macro"]
    return {
        "settings": {"size": size, "angles_deg": angles, "device": str(device), "batch_size": batch_size},
        "shifts": {s: (get_shift(s).description if s != NONE else "the unshifted test split") for s in names},
        "configs": {c.label: {s: shifted_config(c.base, s).to_dict() for s in names if s not in ROTATIONS}
                    for c in loaded},
        "rows": ordered,
        "skipped": skipped,
    }


def _not_run(shift: str, config: SimulationConfig, crop: int | None) -> str | None:
    """Why ``shift`` is not scored for checkpoints trained on ``config`` (None: it is)."""
    if shift in (NONE, *ROTATIONS):
        return None
    reason = get_shift(shift).reason_not_applicable(config)
    if reason:
        return f"not applicable: {reason}"
    if not get_shift(shift).changes(config):
        return "leaves the training config unchanged"
    try:
        fitted_crop(config, shifted_config(config, shift), crop)
    except DataError as err:
        return f"not applicable: {err}"
    return None


def paired_tests(rows: Sequence[dict], pairs: Iterable[tuple[str, str]]) -> list[dict]:
    """McNemar tests (:func:`eqlens.experiments.statistics.mcnemar`) of each ``(label_a, label_b)`` pair on
    every shift where both were scored on the same lenses (equal ``lenses`` keys, per-lens results kept):
    one dict per (pair, shift) with ``a``, ``b``, ``shift`` and the test's fields."""
    by_key = {(r["label"], r["shift"]): r for r in rows}
    shifts = list(dict.fromkeys(r["shift"] for r in rows))
    tests = []
    for a, b in pairs:
        for shift in shifts:
            ra, rb = by_key.get((a, shift)), by_key.get((b, shift))
            if not ra or not rb or "correct" not in ra or "correct" not in rb or ra.get("lenses") != rb.get("lenses"):
                continue
            tests.append({"a": a, "b": b, "shift": shift, **mcnemar(ra["correct"], rb["correct"])})
    return tests


def _progress(total: int, enabled: bool):
    if not enabled:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, desc="shifts", unit="eval")


def _advance(bar, n: int) -> None:
    if bar is not None:
        bar.update(n)


# ------------------------------------------------------------------------------ markdown


def _f(value, digits: int = 3) -> str:
    return "n/a" if value is None or value != value else f"{value:.{digits}f}"


def _signed(value, digits: int = 3) -> str:
    # A drop is shown as a change (negative: worse); + 0.0 turns -0.0 into 0.0.
    return "n/a" if value is None or value != value else f"{-value + 0.0:+.{digits}f}"


def _aug(value) -> str:
    return {True: "yes", False: "no"}.get(value, "?")


def shift_table(rows: Sequence[dict]) -> str:
    """One row per (model, shift): accuracy and macro AUC, and their change from the unshifted split."""
    lines = ["| model | group | augmented | shift | n | accuracy | s.e. | change | macro AUC | change |",
             "|---|---|---|---|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['label']} | {r['group'] or 'none'} | {_aug(r['augment'])} | {r['shift']} | {r['n']} | "
                     f"{_f(r['accuracy'])} | {_f(r.get('accuracy_se'))} | {_signed(r['accuracy_drop'])} | "
                     f"{_f(r['auc_macro'])} | {_signed(r['auc_drop'])} |")
    return "\n".join(lines)


def accuracy_grid(rows: Sequence[dict]) -> str:
    """Accuracy with models as rows and shifts as columns (the same numbers as :func:`shift_table`)."""
    labels = list(dict.fromkeys(r["label"] for r in rows))
    shifts = list(dict.fromkeys(r["shift"] for r in rows))
    cell = {(r["label"], r["shift"]): r["accuracy"] for r in rows}
    lines = ["| model | " + " | ".join(shifts) + " |", "|---|" + "---:|" * len(shifts)]
    for label in labels:
        lines.append(f"| {label} | " + " | ".join(_f(cell.get((label, s))) for s in shifts) + " |")
    return "\n".join(lines)


def orientation_table(rows: Sequence[dict]) -> str:
    """Per model and orientation shift: upright accuracy, mean and worst accuracy over the angles, the worst angle."""
    lines = ["| model | augmented | shift | upright accuracy | mean over angles | worst angle accuracy | worst angle |",
             "|---|---|---|---:|---:|---:|---:|"]
    upright = {r["label"]: r["accuracy"] for r in rows if r["shift"] == NONE}
    for r in rows:
        if r["shift"] not in ROTATIONS:
            continue
        worst = r["angles_deg"][int(np.argmin(r["accuracy_by_angle"]))]
        lines.append(f"| {r['label']} | {_aug(r['augment'])} | {r['shift']} | {_f(upright.get(r['label']))} | "
                     f"{_f(r['accuracy'])} | {_f(r['worst_angle_accuracy'])} | {worst:g} deg |")
    return "\n".join(lines)


def twin_table(rows: Sequence[dict]) -> str | None:
    """Worst-angle accuracy of each equivariant model beside its plain twin (:data:`TWINS`), per
    orientation shift, when the report has both; None otherwise. The first checkpoint of each model
    name is used."""
    first: dict[tuple[str, str], dict] = {}
    for r in rows:
        if r["shift"] in ROTATIONS:
            first.setdefault((r["model"], r["shift"]), r)
    pairs = [(first[(a, s)], first[(b, s)]) for s in ROTATIONS for a, b in TWINS
             if (a, s) in first and (b, s) in first]
    if not pairs:
        return None
    lines = ["| shift | equivariant | worst angle accuracy | plain twin | worst angle accuracy | difference |",
             "|---|---|---:|---|---:|---:|"]
    for eq, plain in pairs:
        diff = eq["worst_angle_accuracy"] - plain["worst_angle_accuracy"]
        lines.append(f"| {eq['shift']} | {eq['label']} (augmented: {_aug(eq['augment'])}) | "
                     f"{_f(eq['worst_angle_accuracy'])} | {plain['label']} (augmented: {_aug(plain['augment'])}) | "
                     f"{_f(plain['worst_angle_accuracy'])} | {diff:+.3f} |")
    return "\n".join(lines)


def markdown_report(report: dict) -> str:
    """Every table of a :func:`evaluate_shifts` report, with the settings and the shifts' meanings."""
    rows, settings = report["rows"], report["settings"]
    parts = [f"Test images per shift: {settings['size']}; device: {settings['device']}.", "",
             "Shifts:", ""]
    parts += [f"- `{name}`: {text}" for name, text in report["shifts"].items()]
    parts += ["", "### Accuracy and macro AUC per model and shift", "", shift_table(rows), "",
              "### Accuracy at a glance", "", accuracy_grid(rows)]
    if any(r["shift"] in ROTATIONS for r in rows):
        parts += ["", f"### Orientation (angles {', '.join(f'{a:g}' for a in settings['angles_deg'])} deg)", "",
                  orientation_table(rows)]
        twins = twin_table(rows)
        if twins:
            parts += ["", "### Equivariant model against its plain twin", "", twins]
    if report.get("skipped"):
        parts += ["", "Skipped: " + "; ".join(f"{s['label']} / {s['shift']} ({s['reason']})"
                                               for s in report["skipped"])]
    return "\n".join(parts) + "\n"

