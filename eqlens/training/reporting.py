"""What a training run tells and records: the progress events (:class:`Progress`), the run's state so
far (:class:`RunState`: best epoch, history, counters), and the records built from it: the history
row of an epoch, the model card and the resume state (:class:`RunRecords`).

The names of :class:`Progress` are the vocabulary of every consumer: the history rows, the card's
``training`` block and the app's job view say ``loss``, ``accuracy``/``mae``, ``images_per_s``,
``best_epoch`` (and ``lr`` for the learning rate), never a translation of them.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from .. import checkpoint
from ..core import distributed
from ..core.run_config import TrainConfig
from ..core.tasks import Objective, task_record
from ..data.splits import DataSplits
from ..data.transforms import InputSpec
from ..evaluation.regression import SUMMARY_EXCLUDES


@dataclass
class Progress:
    """What the progress callback receives. ``phase``: ``"train"`` (every few steps), ``"val"``
    (after an epoch's validation; ``val`` holds its metrics), ``"test"`` (after the final test).
    Regression runs have ``accuracy`` NaN and report ``mae`` (physical units) instead. These names are
    the ones the history rows (``train_accuracy``, ``images_per_s``), the card and the app use."""

    phase: str
    epoch: int
    epochs: int
    step: int
    steps: int
    loss: float  # running mean over the epoch so far
    accuracy: float
    images_per_s: float
    val: dict | None = None
    best_epoch: int | None = None
    mae: float | None = None


def card_summary(report: dict) -> dict:
    """The part of an evaluation report that goes into a model card (no curves, no per-image rows, and not the
    ``checkpoint`` and ``data`` entries :func:`~eqlens.evaluation.checkpoint.evaluate_checkpoint` adds:
    the card says those itself)."""
    return {k: v for k, v in report.items()
            if k not in ("roc", "predictions", "checkpoint", "data", *SUMMARY_EXCLUDES)}


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return f"cuda ({torch.cuda.get_device_name(device)})"
    return device.type


def selection_score(select_on: str, val: dict) -> tuple[float, ...]:
    """How good an epoch's validation metrics are for ``select_on``: higher is better; ties on the main
    metric go to the lower validation loss."""
    def finite(v):
        return v if v is not None and math.isfinite(v) else -math.inf

    loss = -val["loss"] if math.isfinite(val["loss"]) else -math.inf
    if select_on == "val_loss":
        return (loss,)
    if select_on == "val_mse":
        return (-val["mse"] if math.isfinite(val["mse"]) else -math.inf, loss)
    main = val["accuracy"] if select_on == "val_accuracy" else val["auc_macro"]
    return (finite(main), loss)


@dataclass
class RunState:
    """How far a run has got: what the resume state saves and :mod:`eqlens.training.resume` restores.
    ``best``: ``{"epoch", "score", "val"}`` of the best epoch so far, ``best_state`` its eval-mode
    weights; ``transfer``: where the initial weights came from (None: freshly initialised)."""

    epochs_done: int = 0
    history: list[dict] = field(default_factory=list)
    best: dict | None = None
    best_state: dict[str, torch.Tensor] | None = None
    train_time: float = 0.0
    wall_time: float = 0.0
    images_seen: int = 0
    transfer: dict | None = None

    @property
    def best_epoch(self) -> int | None:
        return None if self.best is None else int(self.best["epoch"])

    @property
    def images_per_s(self) -> float:
        return self.images_seen / self.train_time if self.train_time > 0 else 0.0

    def offer(self, epoch: int, val: dict, select_on: str, weights: Callable[[], dict]) -> bool:
        """Keep ``epoch`` as the best if its validation metrics beat the best so far (``weights()`` is
        then called for its weights); True if it did."""
        score = list(selection_score(select_on, val))
        if self.best is not None and score <= list(self.best["score"]):
            return False
        self.best, self.best_state = {"epoch": epoch, "score": score, "val": val}, weights()
        return True


class RunRecords:
    """The records of one run built from its :class:`RunState`: history rows, the card, the resume state."""

    def __init__(self, config: TrainConfig, context, device: torch.device, splits: DataSplits, objective: Objective):
        self.config, self.context, self.device, self.splits, self.objective = config, context, device, splits, objective

    def config_record(self) -> dict:
        """The run's settings, the image size it chose, and the simulation config its data was rendered with
        (every setting; None for data not simulated), which a resume must render again."""
        record = self.config.to_dict()
        record["image_size"] = self.splits.image_size
        record["simulation_config"] = self.splits.description.get("simulation_config")
        return record

    def history_entry(self, epoch: int, epoch_train: dict, val: dict, lr: float) -> dict:
        keys = ("mse", "mae", "r2") if self.objective.scaler is not None else ("accuracy", "auc_macro")
        return {"epoch": epoch, **epoch_train, "val_loss": val["loss"],
                **{f"val_{k}": val[k] for k in keys}, "lr": lr, "bn_recalibrated": self.config.recalibrate_bn}

    def card(self, model: torch.nn.Module, state: RunState, epoch: int, metrics: dict) -> dict:
        c = self.config
        training = {
            "config": self.config_record(),
            "epoch": epoch,
            "epochs_done": state.epochs_done,
            "best_epoch": state.best_epoch,
            "selected_on": c.select_on,
            "device": device_name(self.device),
            "world_size": self.context.world_size,
            "train_time_s": state.train_time,
            "wall_time_s": state.wall_time,
            "images_seen": state.images_seen,
            "fresh_data": c.fresh_data,
            "complete": state.epochs_done >= c.epochs,
            "images_per_s": state.images_per_s,
            "initialised_from": state.transfer,
        }
        input_spec = InputSpec(self.splits.image_size, c.crop, c.circular_mask).to_record()
        # The model's own group; a plain model has none (the run's c.group still set its mirrors and measures).
        group = model.group.name if getattr(model, "group", None) is not None else None
        return checkpoint.make_card(model, class_names=self.splits.class_names, group=group,
                                    data=self.splits.description, training=training, metrics=metrics,
                                    history=state.history, input_spec=input_spec,
                                    task=task_record(c.task, self.objective.scaler))

    def resume_state(self, state: RunState, epoch: int, optimizer, scheduler) -> dict:
        return {
            "format": checkpoint.FORMAT,
            "epoch": epoch,
            "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(),
            "best": state.best,
            "history": state.history,
            "train_time_s": state.train_time,
            "wall_time_s": state.wall_time,
            "images_seen": state.images_seen,
            "config": self.config_record(),
            "transfer": state.transfer,
            "rng": checkpoint.capture_rng_state(),
        }


class ProgressReporter:
    """Sends :class:`Progress` events to the callback (main rank only) and drives the tqdm bars (the CLI)."""

    def __init__(self, config: TrainConfig, context: distributed.DistributedContext,
                 callback: Callable[[Progress], None] | None, progress_bar: bool, objective: Objective,
                 state: RunState):
        self.config, self.context, self.callback = config, context, callback
        self.progress_bar, self.objective, self.state = progress_bar, objective, state

    def bar(self, epoch: int, steps: int):
        if not (self.progress_bar and self.context.is_main):
            return None
        from tqdm.auto import tqdm

        return tqdm(total=steps, desc=f"epoch {epoch}/{self.config.epochs}", unit="batch", leave=True)

    def emit(self, phase: str, epoch: int, step: int, steps: int, loss: float, running: float, images_per_s: float,
             val: dict | None = None, bar=None) -> None:
        """One event; the running figure goes to ``accuracy`` or (regression) ``mae``."""
        accuracy, mae = (running, None) if self.objective.running == "accuracy" else (math.nan, running)
        p = Progress(phase, epoch, self.config.epochs, step, steps, loss, accuracy, images_per_s, val=val,
                     best_epoch=self.state.best_epoch, mae=mae)
        if bar is not None:
            bar.update(step - bar.n)
            shown = {"acc": f"{p.accuracy:.3f}"} if p.mae is None else {"mae": f"{p.mae:.4f}"}
            bar.set_postfix(loss=f"{p.loss:.4f}", **shown, img_s=f"{p.images_per_s:.0f}")
        if self.callback is not None and self.context.is_main:
            self.callback(p)
