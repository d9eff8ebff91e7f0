"""``evaluate_checkpoint``: a checkpoint scored on a split of its data (or another), with the report its
task needs: :func:`eqlens.evaluation.classification.evaluate_model` (classification) or
:func:`eqlens.evaluation.regression.evaluate_regression`. What ``eqlens evaluate`` runs."""

from __future__ import annotations

from ..core import distributed
from ..errors import DataError
from .classification import evaluate_model
from .regression import evaluate_regression


def evaluate_checkpoint(source, data: str | None = None, *, split: str = "test", size: int | None = None,
                        device="auto", batch_size: int = 64, robustness_size: int = 64, workers: int = 0,
                        anatomy: bool = False) -> dict:
    """Load a checkpoint and evaluate it on ``split`` of ``data`` (default: the data it was trained on).

    A regression checkpoint (``card.task``) gets :func:`eqlens.evaluation.regression.evaluate_regression`'s
    report on the lenses of its target's class, a classification one :func:`evaluate_model`'s. The report
    gets ``checkpoint`` (model name, group: None for a plain model, probe_group: the group the robustness
    report turns by, task, the card's metrics) and ``data`` entries. ``anatomy`` (classification on simulated
    data) adds ``anatomy``: the error rate by quantile of each scene parameter, per true class
    (:func:`eqlens.analysis.error_anatomy.error_anatomy`'s bins as rows)."""
    from ..checkpoint import load_checkpoint
    from ..data.splits import is_folder_spec, resolve_data, resolve_eval_dataset, simulation_config

    device = distributed.resolve_device(device)
    model, card = load_checkpoint(source, device=device)
    described = card.data
    spec = data or described.get("spec")
    if not spec:
        raise DataError("the checkpoint does not name its data; pass --data")
    try:
        trained_on = card.simulation_config  # a card without its config: the line vortex of its day
    except DataError:
        if data is None:
            raise
        trained_on = None  # a config this eqlens no longer knows: the data chosen does not depend on it
    if data is None and trained_on is not None:
        spec = trained_on  # the data the model saw, not today's config of that name
    # A simulation config drawing the card's scenes (e.g. model_i_line for model_i) keeps its split and seed.
    same_data = data is None or spec == described.get("spec") or (
        trained_on is not None and not is_folder_spec(spec) and simulation_config(spec).same_scenes(trained_on))
    data_seed = int(described.get("data_seed", 0)) if same_data else 0
    if size is None and same_data:
        size = described.get("sizes", {}).get(split) or None
    image_size, crop = card.input.image_size, card.input.crop
    class_names = list(card.class_names)
    if same_data and described.get("kind") == "folder":
        # The split may have been carved out of the folder: carve it again, the same way.
        splits = resolve_data(spec, image_size, train_size=1, val_size=1, test_size=1,
                              val_fraction=described.get("val_fraction", 0.1),
                              test_fraction=described.get("test_fraction", 0.1), data_seed=data_seed, task=card.task,
                              crop=crop)
        if splits.class_names != class_names:
            raise DataError(f"folder {spec!r} has classes {splits.class_names}, the checkpoint {class_names}")
        dataset = getattr(splits, split)
    else:
        dataset = resolve_eval_dataset(spec, split, image_size, class_names, size=size,
                                       data_seed=data_seed, device=device, task=card.task, crop=crop)
    if anatomy and card.scaler is not None:
        raise DataError("the error anatomy is for classifiers: this checkpoint is a regression")
    if anatomy and is_folder_spec(spec):
        raise DataError("the error anatomy needs simulated lenses: a folder's images have no scene")
    common = dict(batch_size=batch_size, device=device, mask=card.input.circular_mask,
                  robustness_size=robustness_size, group=card.probe_group, workers=workers)
    if card.scaler is None:
        report = evaluate_model(model, dataset, class_names, **common)
        if anatomy:
            report["anatomy"] = _anatomy_rows(dataset, report, class_names)
    else:
        report = evaluate_regression(model, dataset, card.task, card.scaler, **common)
    report["checkpoint"] = {"source": str(source), "model": card.name, "group": card.group,
                            "probe_group": card.probe_group,
                            "task": card.task, "card_metrics": card.metrics}
    rendered = None if is_folder_spec(spec) else simulation_config(spec)
    report["data"] = {"spec": spec if rendered is None else rendered.name, "split": split, "data_seed": data_seed,
                      "image_size": image_size, "crop": crop,
                      "simulation_config": None if rendered is None else rendered.to_dict()}
    return report


def _anatomy_rows(dataset, report: dict, class_names: list[str]) -> list[dict]:
    from ..analysis.error_anatomy import dataset_truths, error_anatomy

    truths = dataset_truths(dataset)
    if truths is None:
        raise DataError("the error anatomy needs simulated lenses: a folder's images have no scene")
    labels = [p["label"] for p in report["predictions"]]
    predicted = [p["predicted"] for p in report["predictions"]]
    return [row for bins in error_anatomy(truths, labels, predicted, class_names) for row in bins.rows()]
