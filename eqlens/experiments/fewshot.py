"""Few-shot learning of a class a model never saw: pretrain on two classes, fine-tune to three.

    report = run_fewshot(FewShotConfig(models=("gcnn", "cnn"), shots=(10, 100, 1000)))
    print(markdown_report(report))

For each model:

1. **Pretrain** on the old classes (Model I without ``new_class``: ``cdm`` and ``no_sub``) with
   :func:`eqlens.training.train`, or take a given 2-class checkpoint.
2. **Transfer**: build the same model with one more output and copy every tensor of the 2-class
   state dict whose key and shape match (:func:`transfer_weights`); only the classifier layer,
   whose shape depends on the number of classes, starts fresh. The skipped keys are reported.
3. **Fine-tune** with :func:`eqlens.training.train` (``init_state``: the pretrained weights, which
   :mod:`eqlens.checkpoint.transfer` copies) for a fixed number of optimizer steps on ``N`` images of
   each of the three classes (the new one balanced with the old), for every ``N`` in ``shots``: 10
   epochs of ``ceil(finetune_steps / 10)`` steps each (:func:`finetune_schedule`), validated after
   each epoch; keep the epoch with the best validation accuracy.
4. **Test** on a held-out 3-class test split: accuracy, macro AUC and the new class's recall
   against ``N``. With ``scratch=True`` a fresh 3-class model trained on the same images gives the
   no-transfer baseline.

Data streams never overlap: pretraining uses the train/val streams of ``data_seed``, fine-tuning
those of ``data_seed + 1`` (the ``10``-shot images are the first of the ``100``-shot ones), and
testing the test stream of ``data_seed``, which no step trains on.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field

import numpy as np
import torch
from torch.utils.data import Subset

from ..checkpoint.transfer import WeightTransfer, architecture, transfer_weights
from ..errors import CheckpointError, DataError, TrainingError
from ..groups import DEFAULT_GROUP
from ..simulation import SimulationConfig, get_config

VALIDATIONS = 10  # fine-tuning epochs: the best of 10 evenly spaced validations is kept


@dataclass
class FewShotConfig:
    """One few-shot experiment. ``data``: the full (3-class) simulation config; ``new_class``: the
    class held out of pretraining. ``pretrained``: model name -> a 2-class checkpoint to start from
    (those models are not pretrained again). ``finetune_steps`` optimizer steps per shot count,
    validated every ``ceil(finetune_steps / 10)`` (:func:`finetune_schedule`). ``out``: keep each
    pretrained checkpoint in ``OUT/<model>``."""

    models: tuple[str, ...] = ("gcnn", "cnn")
    shots: tuple[int, ...] = (10, 100, 1000)
    data: str | SimulationConfig = "model_i"
    new_class: str = "axion"
    group: str = DEFAULT_GROUP
    image_size: int | None = None
    pretrain_epochs: int = 20
    train_size: int = 3000
    val_size: int = 300
    test_size: int = 900
    batch_size: int = 32
    lr: float = 1e-4
    finetune_steps: int = 300
    finetune_lr: float = 1e-4
    seed: int = 0
    data_seed: int = 0
    device: str = "auto"
    augment: bool = True
    circular_mask: bool = True
    scratch: bool = False
    out: str | None = None
    pretrained: dict[str, str] = field(default_factory=dict)
    model_kwargs: dict[str, dict] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.models, self.shots = tuple(self.models), tuple(int(n) for n in self.shots)
        if not self.models:
            raise TrainingError("name at least one model")
        if not self.shots or min(self.shots) < 1:
            raise TrainingError(f"shots must be positive counts, got {self.shots}")
        for name in ("pretrain_epochs", "train_size", "val_size", "test_size", "batch_size", "finetune_steps"):
            if int(getattr(self, name)) < 1:
                raise TrainingError(f"{name} must be at least 1, got {getattr(self, name)}")
        classes = get_config(self.data).class_names
        if self.new_class not in classes or len(classes) < 3:
            raise DataError(f"new_class {self.new_class!r} must be one of at least three classes, got {classes}")


def old_class_config(config: str | SimulationConfig, new_class: str) -> SimulationConfig:
    """``config`` without ``new_class``: the pretraining task (labels renumbered in alphabetical order)."""
    config = get_config(config)
    kept = tuple(c for c in config.class_names if c != new_class)
    return dataclasses.replace(config, class_names=kept, name=f"{config.name}-{new_class}")


def expanded_model(pretrained: torch.nn.Module, num_classes: int,
                   device=None) -> tuple[torch.nn.Module, WeightTransfer]:
    """A fresh copy of ``pretrained``'s architecture with ``num_classes`` outputs and its weights
    transferred (:func:`transfer_weights`): ``(model, transfer)``."""
    from ..checkpoint import eval_state_dict
    from ..models import create_from_config

    build = {**pretrained.build_config, "num_classes": int(num_classes)}
    model = create_from_config(build)
    if device is not None:
        model.to(device)
    return model, transfer_weights(eval_state_dict(pretrained), model)


# ------------------------------------------------------------------------------ fine-tuning


def finetune_schedule(steps: int) -> tuple[int, int]:
    """``(epochs, steps_per_epoch)`` of a budget of ``steps`` optimizer steps: ``VALIDATIONS`` epochs
    (fewer for a smaller budget) of ``ceil(steps / epochs)`` steps, a validation after each. The budget
    is rounded up to a multiple of the epoch count."""
    epochs = min(VALIDATIONS, int(steps))
    return epochs, math.ceil(int(steps) / epochs)


def _finetune(cfg: FewShotConfig, build: dict, data: FewShotData, n: int, device, init_state):
    """Train ``build``'s architecture with three outputs on the ``n``-shot set through the trainer,
    starting from ``init_state`` (None: from scratch); the held-out test split is its test split."""
    from ..core.run_config import TrainConfig
    from ..data.splits import DataSplits
    from ..training import train

    shots = data.shots(n)
    epochs, per_epoch = finetune_schedule(cfg.finetune_steps)
    description = {"kind": "simulated", "spec": data.full.name, "data_seed": cfg.data_seed + 1,
                   "test_data_seed": cfg.data_seed, "simulation_config": data.full.to_dict()}
    splits = DataSplits.from_datasets(shots, data.finetune_val, data.test, list(data.full.class_names), description)
    # weight_decay 0: plain Adam, as the fine-tuning always was
    config = TrainConfig(**architecture(build), data=data.full.name, epochs=epochs, steps_per_epoch=per_epoch,
                         batch_size=min(cfg.batch_size, len(shots)), lr=cfg.finetune_lr, weight_decay=0.0,
                         seed=cfg.seed + n, data_seed=cfg.data_seed + 1, device=str(device), train_size=len(shots),
                         val_size=cfg.val_size, test_size=cfg.test_size, augment=cfg.augment,
                         circular_mask=cfg.circular_mask, robustness_size=0, out=None)
    return train(config, data=splits, init_state=init_state)


def _test_scores(report: dict, new_class: str) -> dict:
    """The few-shot scores of an :func:`evaluate_model` report on the held-out test split."""
    k = list(report["class_names"]).index(new_class)
    confusion = np.asarray(report["confusion"])
    recall = float(confusion[k, k] / confusion[k].sum()) if confusion[k].sum() else float("nan")
    return {"accuracy": report["accuracy"], "auc_macro": report["auc_macro"],
            "new_class_auc": report["per_class_auc"][new_class], "new_class_recall": recall,
            "confusion": report["confusion"]}


# ------------------------------------------------------------------------------ the experiment


class FewShotData:
    """The datasets of one experiment at one input size, rendered on ``device``: ``pretrain``
    (train, val, test of the old classes, stream ``data_seed``), ``shot_pool`` and ``finetune_val``
    (all classes, stream ``data_seed + 1``), ``test`` (all classes, test stream of ``data_seed``)."""

    def __init__(self, cfg: FewShotConfig, image_size: int, device):
        from ..data.simulated import SimulatedLensDataset

        def make(config, split, size, seed, cache):
            return SimulatedLensDataset(config, split=split, size=size, seed=seed, image_size=image_size,
                                        device=device, cache=cache)

        self.full, self.old = get_config(cfg.data), old_class_config(cfg.data, cfg.new_class)
        self.image_size = image_size
        k = self.full.num_classes
        self.pretrain = [make(self.old, s, n, cfg.data_seed, False)
                         for s, n in (("train", cfg.train_size), ("val", cfg.val_size), ("test", cfg.test_size))]
        # Item i has label i % K, so the first K * N items hold exactly N of every class.
        self.shot_pool = make(self.full, "train", k * max(cfg.shots), cfg.data_seed + 1, True)
        self.finetune_val = make(self.full, "val", cfg.val_size, cfg.data_seed + 1, True)
        self.test = make(self.full, "test", cfg.test_size, cfg.data_seed, True)

    def shots(self, n: int) -> Subset:
        """``n`` images of every class (``K * n`` in all); the set for ``n`` starts the set for any larger ``n``."""
        return Subset(self.shot_pool, list(range(self.full.num_classes * n)))


def _pretrain(cfg: FewShotConfig, name: str, data: FewShotData, device, progress_bar: bool):
    from ..core.run_config import TrainConfig
    from ..data.splits import DataSplits
    from ..training import train

    train_set, val_set, test_set = data.pretrain
    description = {"kind": "simulated", "spec": data.old.name, "data_seed": cfg.data_seed,
                   "simulation_config": data.old.to_dict()}
    splits = DataSplits.from_datasets(train_set, val_set, test_set, list(data.old.class_names), description)
    config = TrainConfig(model=name, group=cfg.group, data=data.old.name, epochs=cfg.pretrain_epochs,
                         batch_size=cfg.batch_size, lr=cfg.lr, image_size=data.image_size, seed=cfg.seed,
                         data_seed=cfg.data_seed, device=str(device), train_size=cfg.train_size,
                         val_size=cfg.val_size, test_size=cfg.test_size, augment=cfg.augment,
                         circular_mask=cfg.circular_mask, robustness_size=0,
                         out=None if cfg.out is None else f"{cfg.out}/{name}",
                         model_kwargs=dict(cfg.model_kwargs.get(name, {})))
    result = train(config, data=splits, progress_bar=progress_bar)
    kept = None if result.checkpoint is None else str(result.checkpoint)
    return result.model, {"source": "trained here", "checkpoint": kept,
                          "epochs": cfg.pretrain_epochs, "best_epoch": result.best_epoch,
                          "val_accuracy": (result.val_metrics or {}).get("accuracy"),
                          "test_accuracy": (result.test_metrics or {}).get("accuracy")}


def _load_pretrained(source: str, name: str, old: SimulationConfig, device):
    from ..checkpoint import load_checkpoint

    model, card = load_checkpoint(source, device=device)
    if card.name != name:
        raise CheckpointError(f"{source}: holds a {card.name!r} model, given as the pretrained {name!r}")
    if list(card.class_names) != list(old.class_names):
        raise CheckpointError(f"{source}: trained on classes {list(card.class_names)}, the few-shot task pretrains "
                              f"on {list(old.class_names)}")
    test = card.metrics.get("test") or {}
    return model, {"source": "checkpoint", "checkpoint": str(source), "test_accuracy": test.get("accuracy")}


def _image_size(cfg: FewShotConfig, name: str) -> int:
    from .. import models
    from ..training.run_setup import choose_image_size

    return choose_image_size(cfg.image_size, get_config(cfg.data).image_size, models.spec(name))


def run_model(cfg: FewShotConfig, name: str, device, progress_bar: bool = False) -> dict:
    """Pretrain (or load), transfer and fine-tune one model over every shot count (module docstring)."""
    from ..checkpoint import eval_state_dict

    old = old_class_config(cfg.data, cfg.new_class)
    if name in cfg.pretrained:
        pretrained, pretrain_info = _load_pretrained(cfg.pretrained[name], name, old, device)
        data = FewShotData(cfg, int(pretrained.build_config["image_size"]), device)
    else:
        data = FewShotData(cfg, _image_size(cfg, name), device)
        pretrained, pretrain_info = _pretrain(cfg, name, data, device, progress_bar)
    # The architecture (and group: a given checkpoint may use another than cfg.group) is the pretrained one's.
    build, weights = dict(pretrained.build_config), eval_state_dict(pretrained)
    _, per_epoch = finetune_schedule(cfg.finetune_steps)
    curve, transfer = [], None
    for n in sorted(cfg.shots):
        tuned = _finetune(cfg, build, data, n, device, weights)
        transfer = {k: tuned.extra["transfer"][k] for k in ("loaded", "skipped", "missing")}
        point = {"shots": n, "train_images": len(data.shots(n)),
                 "finetune": {"best_step": tuned.best_epoch * per_epoch, "val_accuracy": tuned.val_metrics["accuracy"],
                              "val_loss": tuned.val_metrics["loss"]}}
        point.update(_test_scores(tuned.test_metrics, cfg.new_class))
        if cfg.scratch:
            point["scratch"] = _test_scores(_finetune(cfg, build, data, n, device, None).test_metrics, cfg.new_class)
        curve.append(point)
    return {"model": name, "image_size": data.image_size, "old_classes": list(old.class_names),
            "classes": list(data.full.class_names), "pretrain": pretrain_info, "transfer": transfer, "curve": curve}


def run_fewshot(cfg: FewShotConfig, progress_bar: bool = False) -> dict:
    """Every model of ``cfg`` through :func:`run_model`. Returns ``{"settings", "models": [...]}``,
    each model's ``curve`` holding one point per shot count (ascending) with ``shots``,
    ``train_images``, ``accuracy``, ``auc_macro``, ``new_class_auc``, ``new_class_recall``,
    ``confusion``, ``finetune`` (best step) and, with ``scratch``, the same scores under ``scratch``."""
    from ..core.distributed import resolve_device

    device = resolve_device(cfg.device)
    names = list(cfg.models)
    if progress_bar:
        from tqdm.auto import tqdm

        names = tqdm(names, desc="few-shot models", unit="model")
    results = [run_model(cfg, name, device, progress_bar) for name in names]
    settings = {**dataclasses.asdict(cfg), "data": get_config(cfg.data).name, "device": str(device)}
    return {"settings": settings, "models": results}


# ------------------------------------------------------------------------------ markdown


def _f(value) -> str:
    return "n/a" if value is None or value != value else f"{value:.3f}"


def curve_table(report: dict) -> str:
    """Held-out 3-class test accuracy: one row per shot count, one column per model."""
    models = report["models"]
    shots = sorted({p["shots"] for m in models for p in m["curve"]})
    acc = {(m["model"], p["shots"]): p["accuracy"] for m in models for p in m["curve"]}
    lines = ["| examples per class | " + " | ".join(m["model"] for m in models) + " |",
             "|---:|" + "---:|" * len(models)]
    lines += [f"| {n} | " + " | ".join(_f(acc.get((m["model"], n))) for m in models) + " |" for n in shots]
    return "\n".join(lines)


def detail_table(report: dict) -> str:
    """Every point: accuracy, macro AUC, the new class's AUC and recall (and the scratch baseline's accuracy)."""
    scratch = any("scratch" in p for m in report["models"] for p in m["curve"])
    head = "| model | examples per class | accuracy | macro AUC | new-class AUC | new-class recall |"
    rule = "|---|---:|---:|---:|---:|---:|"
    lines = [head + (" scratch accuracy |" if scratch else ""), rule + ("---:|" if scratch else "")]
    for m in report["models"]:
        for p in m["curve"]:
            row = (f"| {m['model']} | {p['shots']} | {_f(p['accuracy'])} | {_f(p['auc_macro'])} | "
                   f"{_f(p['new_class_auc'])} | {_f(p['new_class_recall'])} |")
            lines.append(row + (f" {_f(p['scratch']['accuracy'])} |" if scratch else ""))
    return "\n".join(lines)


def markdown_report(report: dict) -> str:
    s = report["settings"]
    new = s["new_class"]
    parts = [f"Pretrained on {s['data']} without `{new}`, fine-tuned to all classes with N examples of each "
             f"(the new one balanced with the old), {s['finetune_steps']} steps; held-out test: {s['test_size']} "
             f"images; device: {s['device']}.", "", "### Test accuracy against examples per class", "",
             curve_table(report), "", "### Details", "", detail_table(report), "", "### Weights transferred", ""]
    for m in report["models"]:
        t = m["transfer"]
        skipped = ", ".join(f"`{k}` {tuple(a)} -> {tuple(b)}" for k, (a, b) in t["skipped"].items()) or "none"
        pre = m["pretrain"]
        parts.append(f"- {m['model']}: {t['loaded']} tensors copied; re-initialised (shape differs): {skipped}; "
                     f"pretraining: {pre['source']}, 2-class test accuracy {_f(pre.get('test_accuracy'))}.")
    return "\n".join(parts) + "\n"
