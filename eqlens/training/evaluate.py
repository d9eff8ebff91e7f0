"""Evaluate a model on a dataset: metrics, ROC curves, per-image predictions, robustness.

:func:`evaluate_model` returns one JSON-able dict with stable keys (docs/training.md):

- ``n``, ``class_names``, ``accuracy``, ``auc_macro`` (mean one-vs-rest AUC on softmax),
  ``per_class_auc`` (name -> AUC), ``confusion`` (rows true, columns predicted), ``loss``
  (mean cross-entropy), ``roc`` (name -> ``{"fpr", "tpr", "thresholds"}``);
- ``predictions``: one ``{"source", "label", "predicted", "probabilities", "correct"}`` per image,
  ``source`` being ``{"file": path}`` or ``{"config", "split", "seed", "index"}``;
- ``robustness``: :func:`eqlens.analysis.equivariance.robustness_report` on the first
  ``robustness_size`` images (None when skipped), and ``invariance_error``: its worst exact
  in-group logit error (``robustness["invariance_error"]["max"]``; None when skipped).

Regression models have their own report (:mod:`eqlens.training.evaluate_regression`);
:func:`evaluate_checkpoint` picks the one the checkpoint's task needs.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import DataError
from . import distributed
from .augment import apply_circular_mask
from .data_sources import describe_item, iterate_batches
from .metrics import classification_report, softmax


def _autocast(device: torch.device, amp: bool):
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp and device.type == "cuda")


@torch.no_grad()
def predict(model, dataset, *, batch_size: int = 64, device=None, mask: bool = True, workers: int = 0,
            amp: bool = False, context: distributed.DistributedContext | None = None):
    """Logits ``[N, K]`` (float32, CPU), labels ``[N]`` (int64; regression targets keep their float
    dtype) and dataset indices ``[N]`` of ``dataset``.

    Run in eval mode (the mode is restored). In a distributed run each rank predicts its shard and
    every rank gets all rows."""
    from .checkpoint import eval_mode

    context = context or distributed.DistributedContext()
    device = torch.device(device) if device is not None else next(model.parameters()).device
    indices = distributed.shard_indices(torch.arange(len(dataset)), context, pad=False)
    batches = [indices[i : i + batch_size].tolist() for i in range(0, len(indices), batch_size)]
    logits, labels = [], []
    with eval_mode(model):
        for x, y in iterate_batches(dataset, batches, device, workers):
            x = apply_circular_mask(x) if mask else x
            with _autocast(device, amp):
                logits.append(model(x).float())
            labels.append(y if y.is_floating_point() else y.long())  # regression targets stay float
    k = getattr(model, "build_config", {}).get("num_classes") or (logits[0].shape[1] if logits else 0)
    logits_t = torch.cat(logits) if logits else torch.zeros(0, k, device=device)
    labels_t = torch.cat(labels) if labels else torch.zeros(0, dtype=torch.long, device=device)
    gathered = (distributed.gather_concat(logits_t, context), distributed.gather_concat(labels_t, context),
                distributed.gather_concat(indices.to(device), context))
    return tuple(t.cpu() for t in gathered)


def robustness(model, x: torch.Tensor, y: torch.Tensor, group, angles=None) -> dict | None:
    """:func:`eqlens.analysis.equivariance.robustness_report` on ``x [n, 1, S, S]`` (its default
    angles when ``angles`` is None), or None while the analysis package does not provide it."""
    try:
        from ..analysis.equivariance import robustness_report
    except ImportError:
        return None
    if angles is None:
        return robustness_report(model, x, y, group)
    return robustness_report(model, x, y, group, list(angles))


def evaluate_model(model, dataset, class_names, *, batch_size: int = 64, device=None, mask: bool = True,
                   robustness_size: int = 64, group=None, angles=None, with_predictions: bool = True,
                   with_roc: bool = True, workers: int = 0, amp: bool = False,
                   context: distributed.DistributedContext | None = None) -> dict:
    """Metrics of ``model`` on ``dataset`` (see the module docstring for the keys).

    ``mask`` must match how the model was trained (``card["input"]["circular_mask"]``); ``group``
    (a name or Group, default the model's) is the group of the robustness report."""
    class_names = list(class_names)
    if len(dataset) == 0:
        raise DataError("cannot evaluate on an empty dataset")
    dataset_names = getattr(dataset, "class_names", None)
    if dataset_names is not None and list(dataset_names) != class_names:
        raise DataError(f"dataset classes {list(dataset_names)} differ from the model's {class_names}")
    logits, labels, indices = predict(model, dataset, batch_size=batch_size, device=device, mask=mask,
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


def first_images(model, dataset, size: int, device, mask: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """The first ``size`` items of ``dataset`` as model input ``x [n, 1, S, S]`` (masked if ``mask``)
    and their labels or targets ``y [n]``, on ``device`` (default: the model's)."""
    device = torch.device(device) if device is not None else next(model.parameters()).device
    take = list(range(min(int(size), len(dataset))))
    x, y = next(iterate_batches(dataset, [take], device))
    return (apply_circular_mask(x) if mask else x), y


def model_group(model, group=None):
    """``group`` (a name or Group) if given, else the group the model was built for."""
    from ..groups import get_group

    return get_group(group or getattr(model, "group", None) or model.build_config.get("group", "C4"))


def _robustness_on_subset(model, dataset, size, group, angles, device, mask) -> dict | None:
    from .checkpoint import eval_mode

    x, y = first_images(model, dataset, size, device, mask)
    with eval_mode(model):
        report = robustness(model, x, y, model_group(model, group), angles)
    return None if report is None else {k: _plain(v) for k, v in report.items()}


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


def evaluate_checkpoint(source, data: str | None = None, *, split: str = "test", size: int | None = None,
                        device="auto", batch_size: int = 64, robustness_size: int = 64, workers: int = 0) -> dict:
    """Load a checkpoint and evaluate it on ``split`` of ``data`` (default: the data it was trained on).

    A regression checkpoint (``card["task"]``) gets :func:`eqlens.training.evaluate_regression.evaluate_regression`'s
    report on the lenses of its target's class, a classification one :func:`evaluate_model`'s. The report
    gets ``checkpoint`` (model name, group, task, the card's metrics) and ``data`` entries."""
    from .checkpoint import load_checkpoint
    from .data_sources import resolve_data, resolve_eval_dataset
    from .evaluate_regression import evaluate_regression
    from .targets import card_task

    device = distributed.resolve_device(device)
    model, card = load_checkpoint(source, device=device)
    task, scaler = card_task(card, str(source))
    spec = data or card.get("data", {}).get("spec")
    if not spec:
        raise DataError("the checkpoint does not name its data; pass --data")
    same_data = spec == card.get("data", {}).get("spec")
    data_seed = int(card.get("data", {}).get("data_seed", 0)) if same_data else 0
    if size is None and same_data:
        size = card.get("data", {}).get("sizes", {}).get(split) or None
    image_size = int(card["input"].get("image_size") or card["model"]["build_config"]["image_size"])
    described = card.get("data", {})
    if same_data and described.get("kind") == "folder":
        # The split may have been carved out of the folder: carve it again, the same way.
        splits = resolve_data(spec, image_size, train_size=1, val_size=1, test_size=1,
                              val_fraction=described.get("val_fraction", 0.1),
                              test_fraction=described.get("test_fraction", 0.1), data_seed=data_seed, task=task)
        if splits.class_names != list(card["class_names"]):
            raise DataError(f"folder {spec!r} has classes {splits.class_names}, the checkpoint {card['class_names']}")
        dataset = getattr(splits, split)
    else:
        dataset = resolve_eval_dataset(spec, split, image_size, card["class_names"], size=size,
                                       data_seed=data_seed, device=device, task=task)
    common = dict(batch_size=batch_size, device=device, mask=bool(card["input"].get("circular_mask", False)),
                  robustness_size=robustness_size, group=card.get("group"), workers=workers)
    if scaler is None:
        report = evaluate_model(model, dataset, card["class_names"], **common)
    else:
        report = evaluate_regression(model, dataset, task, scaler, **common)
    report["checkpoint"] = {"source": str(source), "model": card["model"]["name"], "group": card.get("group"),
                            "task": task, "card_metrics": card.get("metrics", {})}
    report["data"] = {"spec": spec, "split": split, "data_seed": data_seed, "image_size": image_size}
    return report
