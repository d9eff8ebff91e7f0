"""Evaluate a model on a dataset: metrics, ROC curves, per-image predictions, robustness.

:func:`evaluate_model` returns one JSON-able dict with stable keys (docs/training.md):

- ``n``, ``class_names``, ``accuracy``, ``auc_macro`` (mean one-vs-rest AUC on softmax),
  ``per_class_auc`` (name -> AUC), ``confusion`` (rows true, columns predicted), ``loss``
  (mean cross-entropy), ``roc`` (name -> ``{"fpr", "tpr", "thresholds"}``);
- ``predictions``: one ``{"source", "label", "predicted", "probabilities", "correct"}`` per image,
  ``source`` being ``{"file": path}`` or ``{"config", "split", "seed", "index"}``;
- ``robustness``: :func:`eqlens.analysis.equivariance.robustness_report` on the first
  ``robustness_size`` images (None when skipped), and ``invariance_error``: its worst exact
  in-group logit error (``robustness["invariance_error"]["max"]``; None when skipped);
  ``robustness["sky"]``: :func:`sky_robustness`, the same images with their *scenes* turned and
  rendered (simulated data; None for files), the orientation test free of resampling blur.

Regression models have their own report (:mod:`eqlens.evaluation.regression`);
:func:`eqlens.evaluation.checkpoint.evaluate_checkpoint` picks the one a checkpoint's task needs.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from ..checkpoint.predict import dataset_outputs
from ..core import distributed
from ..data.splits import class_balanced_indices, describe_item, iterate_batches
from ..data.transforms import apply_circular_mask
from ..errors import DataError
from ..models.inspection import eval_mode
from .metrics import classification_report, softmax


def robustness(model, x: torch.Tensor, y: torch.Tensor, group, angles=None) -> dict:
    """:func:`eqlens.analysis.equivariance.robustness_report` on ``x [n, 1, S, S]`` (its default
    angles when ``angles`` is None). A broken analysis import fails loudly: it must never silently
    drop the invariance metrics from a card."""
    from ..analysis.equivariance import robustness_report

    if angles is None:
        return robustness_report(model, x, y, group)
    return robustness_report(model, x, y, group, list(angles))


def evaluate_model(model, dataset, class_names, *, batch_size: int = 64, device=None, mask: bool = True,
                   robustness_size: int = 64, group=None, angles=None, with_predictions: bool = True,
                   with_roc: bool = True, workers: int = 0, amp: bool = False,
                   context: distributed.DistributedContext | None = None) -> dict:
    """Metrics of ``model`` on ``dataset`` (see the module docstring for the keys).

    ``mask`` must match how the model was trained (``card.input.circular_mask``); ``group``
    (a name or Group, default :func:`probe_group`) is the probe group of the robustness report."""
    class_names = list(class_names)
    if len(dataset) == 0:
        raise DataError("cannot evaluate on an empty dataset")
    dataset_names = getattr(dataset, "class_names", None)
    if dataset_names is not None and list(dataset_names) != class_names:
        raise DataError(f"dataset classes {list(dataset_names)} differ from the model's {class_names}")
    logits, labels, indices = dataset_outputs(model, dataset, mask=mask, batch_size=batch_size, device=device,
                                              workers=workers, amp=amp, context=context)
    if labels.numel() and (labels.min() < 0 or labels.max() >= len(class_names)):
        raise DataError(f"labels outside 0..{len(class_names) - 1} in the dataset")
    probs = softmax(logits)
    report = classification_report(probs, labels, class_names, with_roc=with_roc)
    report["class_names"] = class_names
    report["loss"] = float(F.cross_entropy(logits, labels)) if len(labels) else float("nan")
    if with_predictions:
        report["predictions"] = [
            {"source": describe_item(dataset, int(i)), "label": int(t), "predicted": int(p.argmax()),
             "probabilities": p.tolist(), "correct": bool(int(p.argmax()) == int(t))}
            for i, t, p in zip(indices.tolist(), labels.tolist(), probs, strict=True)
        ]
    report["robustness"] = None
    if robustness_size > 0:
        report["robustness"] = _robustness_on_subset(model, dataset, robustness_size, group, angles, device, mask)
    report["invariance_error"] = _scalar_invariance_error(report["robustness"])
    return report


def robustness_images(model, dataset, size: int, device, mask: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """``size`` items of ``dataset``, the classes taken in turn (:func:`eqlens.data.splits.class_balanced_indices`:
    a folder's first files are all of one class), as model input ``x [n, 1, S, S]`` (masked if ``mask``)
    and their labels or targets ``y [n]``, on ``device`` (default: the model's)."""
    device = torch.device(device) if device is not None else next(model.parameters()).device
    take = class_balanced_indices(dataset, size)
    x, y = next(iterate_batches(dataset, [take], device))
    return (apply_circular_mask(x) if mask else x), y


def probe_group(model, group=None):
    """The group whose exact elements the robustness report turns the input by: ``group`` (a name or Group)
    if given, else the model's own; a plain model has none, so it is probed with
    :data:`eqlens.groups.DEFAULT_GROUP` (C4's quarter turns). A measurement, not the model's group
    (a checkpoint's: :attr:`eqlens.checkpoint.ModelCard.probe_group`)."""
    from ..groups import DEFAULT_GROUP, get_group

    own = getattr(model, "group", None) or (getattr(model, "build_config", None) or {}).get("group")
    return get_group(group or own or DEFAULT_GROUP)


def _robustness_on_subset(model, dataset, size, group, angles, device, mask) -> dict | None:
    x, y = robustness_images(model, dataset, size, device, mask)
    with eval_mode(model):
        report = robustness(model, x, y, probe_group(model, group), angles)
    report["sky"] = sky_robustness(model, dataset, size, angles, device, mask)
    return {k: _plain(v) for k, v in report.items()}


def turned_outputs(model, dataset, size: int, angles, device=None, mask: bool = True,
                   batch_size: int = 64) -> tuple[torch.Tensor, torch.Tensor] | None:
    """Model outputs ``[A, n, K]`` (float32, CPU) for the first ``n = min(size, len(dataset))`` items
    with their scenes turned by each of ``angles`` (deg) and rendered, and their labels or targets
    ``y [n]``; None when the dataset cannot re-render its scenes (files on disk).

    The images come from the dataset's ``turned_batch`` (:meth:`eqlens.data.SimulatedLensDataset.turned_batch`):
    the instrument's own pixel grid and noise at every angle, so unlike turning the picture no copy is
    resampled, and a drop with the angle is the model's, not the interpolation's."""
    from ..data.splits import base_dataset

    base, mapping = base_dataset(dataset)
    if not hasattr(base, "turned_batch"):
        return None
    device = torch.device(device) if device is not None else next(model.parameters()).device
    n = min(int(size), len(dataset))
    items = [mapping[i] for i in range(n)] if mapping is not None else list(range(n))
    chunks = [items[i : i + batch_size] for i in range(0, n, batch_size)]
    outputs, labels = [], None
    with eval_mode(model), torch.no_grad():
        for angle in angles:
            parts = []
            for chunk in chunks:
                x, y = base.turned_batch(chunk, float(angle))
                x = x.to(device)
                parts.append((model(apply_circular_mask(x) if mask else x).float().cpu(), y.cpu()))
            outputs.append(torch.cat([p[0] for p in parts]))
            labels = torch.cat([p[1] for p in parts])
    return torch.stack(outputs), labels


def sky_robustness(model, dataset, size: int, angles=None, device=None, mask: bool = True) -> dict | None:
    """Accuracy of a classifier over turned *scenes* (:func:`turned_outputs`), None for data that
    cannot be re-rendered. Keys: ``angles_deg``, ``accuracy_by_angle``, ``worst_angle_accuracy``,
    ``orbit_consistency`` (share of turned copies predicted as the 0-deg one), ``num_images``."""
    from ..analysis.equivariance import DEFAULT_ANGLES

    requested = [float(a) for a in (DEFAULT_ANGLES if angles is None else angles)]
    upright = next((i for i, a in enumerate(requested) if a % 360 == 0), None)
    all_angles = requested if upright is not None else [*requested, 0.0]
    turned = turned_outputs(model, dataset, size, all_angles, device, mask)
    if turned is None:
        return None
    outputs, y = turned
    predicted = outputs.argmax(dim=-1)  # [A, n]
    accuracy = (predicted[: len(requested)] == y.long()[None]).float().mean(dim=1)
    zero = upright if upright is not None else len(requested)
    others = [a for a in range(len(all_angles)) if a != zero]
    consistency = float((predicted[others] == predicted[zero][None]).float().mean()) if others else None
    return {"num_images": int(y.shape[0]), "angles_deg": requested,
            "accuracy_by_angle": [float(a) for a in accuracy], "worst_angle_accuracy": float(accuracy.min()),
            "orbit_consistency": consistency}


def _scalar_invariance_error(robust: dict | None) -> float | None:
    """The worst exact in-group error ``max_g |f(g x) - f(x)| / |f(x)|`` of a robustness report."""
    value = (robust or {}).get("invariance_error")
    if isinstance(value, dict):
        value = value.get("max")
    return None if value is None else float(value)


def _plain(value):
    if torch.is_tensor(value):
        return value.detach().cpu().tolist()
    if isinstance(value, np.ndarray):
        return value.tolist()
    return value
