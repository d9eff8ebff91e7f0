"""The training loop: ``train(TrainConfig) -> TrainResult``.

Per epoch: shuffle the training indices with a generator seeded by ``(seed, epoch)``, give each
rank its shard, render/load each batch on the device, augment (random rotation, flips for D_N,
circular mask), take an Adam step; then evaluate the validation split, keep the best epoch by
``config.select_on`` and write ``OUT/last`` (and ``OUT/`` when the epoch is the best so far).
After the last epoch the best weights are evaluated once on the test split, which never takes part
in selection, and the best checkpoint is rewritten with those test metrics.

``config.task`` picks the objective (:mod:`eqlens.core.tasks`): classification (cross-entropy,
accuracy) or a regression target (one output, MSE on the target standardised with the training
split's mean and std, MAE in physical units; the best epoch has the lowest validation MSE).

Because every random draw of an epoch derives from ``(seed, epoch)`` and the resume state restores
weights, optimizer, schedule and global RNG states, an interrupted run resumed with
``resume=True`` ends with the same weights as an uninterrupted one (on a deterministic device).

Fine-tuning: ``config.init_from`` (a checkpoint) or ``init_state`` (weights in memory) start the
model from other weights, the classifier aside when the class count differs
(:func:`eqlens.checkpoint.transfer.initialise_from`), after the model is built and before the
optimizer sees it; a resumed run keeps its own weights. ``config.steps_per_epoch`` fixes the batches
per epoch, so a small fine-tuning set is validated every few steps rather than every pass.

The run is split by job: :mod:`.run_setup` builds and checks what the run needs (splits, model,
optimizer), :mod:`.resume` brings an interrupted run back, :mod:`.epoch_loop` takes the training
steps, :mod:`.reporting` keeps the run's state and writes its progress events, history and card;
this module holds them together, epoch by epoch.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import torch

from .. import checkpoint
from ..checkpoint import transfer
from ..core import distributed
from ..core.run_config import TrainConfig
from ..core.tasks import Objective
from ..data.augment import Augmenter
from ..data.splits import DataSplits
from ..errors import TrainingError
from ..evaluation.classification import evaluate_model
from ..evaluation.regression import evaluate_regression
from ..groups import get_group
from . import resume, run_setup
from .epoch_loop import Budget, EpochLoop
from .reporting import Progress, ProgressReporter, RunRecords, RunState, card_summary, device_name
from .run_setup import GLOBAL_RNG_LOCK

__all__ = ["GLOBAL_RNG_LOCK", "Progress", "TrainResult", "train"]


@dataclass
class TrainResult:
    """The best model (eval mode, on the training device), its card and metrics.

    ``cancelled``: the stop event ended the run early (the unfinished epoch is dropped; test
    metrics are then None). ``test_metrics`` is the full :func:`evaluate_model` report (ROC curves,
    predictions); the card keeps a summary. ``extra["transfer"]``: where the initial weights came
    from (``source``: the ``init_from`` path or ``"in-memory state"``; ``source_sha256``: the
    :func:`~eqlens.checkpoint.transfer.weights_digest` of those weights, which outlives the path) and
    :meth:`WeightTransfer.to_dict` (``loaded`` count, ``skipped`` classifier keys with their shapes,
    ``missing``); None for a freshly initialised model."""

    model: torch.nn.Module
    card: checkpoint.ModelCard | None  # None when no epoch finished
    checkpoint: Path | None
    history: list[dict]
    val_metrics: dict | None
    test_metrics: dict | None
    best_epoch: int | None
    cancelled: bool
    train_time_s: float
    images_per_s: float
    device: str
    extra: dict = field(default_factory=dict)
    budget_spent: bool = False  # the time budget ended this call before the last epoch: resume to go on


def _oom_error(batch_size: int, err: Exception) -> TrainingError:
    return TrainingError(f"CUDA out of memory at batch size {batch_size}: try --batch-size {max(batch_size // 2, 1)}"
                         f" ({str(err).splitlines()[0]})")


class _Run:
    """One call of :func:`train`: builds the parts, runs the epochs, validates, tests and writes."""

    def __init__(self, config: TrainConfig, context, progress, stop_event, data: DataSplits | None, progress_bar,
                 init_state: Mapping[str, torch.Tensor] | None = None):
        if init_state is not None and config.init_from is not None:
            raise TrainingError(f"give init_from ({config.init_from}) or init_state, not both: which weights "
                                f"should start the run?")
        self.config, self.context = config, context
        if config.threads is not None:
            torch.set_num_threads(int(config.threads))
        self.device = distributed.resolve_device(config.device, context)
        self.out = Path(config.out) if config.out else None
        self.writes = self.out is not None and context.is_main
        resuming = resume.will_resume(config, self.out)
        # A resumed run renders the data it started on, even where the config of that name changed since.
        recorded = resume.saved_simulation_config(self.out, config) if resuming and data is None else None
        # resolve_splits draws nothing from the global generators
        self.splits = run_setup.resolve_splits(config, self.device, data, recorded)
        self.objective = Objective(config.task, run_setup.fit_scaler(config.task, self.splits))
        initial = None if resuming else run_setup.initial_weights(config, init_state)  # read before the build
        with GLOBAL_RNG_LOCK:  # the seed alone decides the initial weights, whatever else the process runs
            run_setup.seed_everything(config.seed)
            self.model = run_setup.build_model(config, self.splits.image_size,
                                               self.objective.num_outputs(self.splits.class_names), self.device)
        self.state = RunState()
        if initial is not None:
            tensors, name = initial
            self.state.transfer = {"source": name, "source_sha256": transfer.weights_digest(tensors),
                                   **transfer.initialise_from(self.model, tensors, name).to_dict()}
        self.optimizer, self.scheduler = run_setup.make_optimizer(self.model, config)
        augmenter = Augmenter(get_group(config.group), config.augment, config.circular_mask, config.augment_mode)
        self.records = RunRecords(config, context, self.device, self.splits, self.objective)
        self.reporter = ProgressReporter(config, context, progress, progress_bar, self.objective, self.state)
        self.loop = EpochLoop(config, context, self.device, self.splits, self.objective, augmenter, self.model,
                              self.optimizer, self.state, self.reporter, self.out if self.writes else None, stop_event)
        self.budget_spent = False
        if config.resume and self.out is not None:
            resume.resume_run(self.out, config, self.records.config_record(), self.model, self.optimizer,
                              self.scheduler, self.state, self.writes)

    def run(self) -> TrainResult:
        c = self.config
        net = self.model
        if self.context.enabled:
            ids = [self.device.index] if self.device.type == "cuda" else None
            net = torch.nn.parallel.DistributedDataParallel(self.model, device_ids=ids)
        cancelled = False
        first = self.state.epochs_done + 1
        budget = Budget(c.time_budget_min, self.loop.estimate_epoch_s(first) if c.time_budget_min is not None else 0.0)
        try:
            for epoch in range(first, c.epochs + 1):
                if not budget.fits_another():
                    self.budget_spent = True
                    break
                started = time.perf_counter()
                epoch_train = self.loop.train_epoch(net, epoch)
                if epoch_train is None:
                    cancelled = True
                    break
                self._end_epoch(epoch, epoch_train, time.perf_counter() - started)
                budget.record(time.perf_counter() - started)
            test_report = None if cancelled else self._test()
        except torch.cuda.OutOfMemoryError as err:
            raise _oom_error(c.batch_size, err) from None
        return self._result(cancelled, test_report)

    def _evaluate(self, dataset, final: bool) -> dict:
        """Validation (``final=False``: metrics only) or the test report (curves, per-image rows,
        robustness on the main rank) of the task."""
        c = self.config
        common = dict(batch_size=c.eval_batch_size, device=self.device, mask=c.circular_mask, group=c.group,
                      robustness_size=c.robustness_size if final and self.context.is_main else 0,
                      workers=c.workers, amp=c.amp, context=self.context)
        if self.objective.scaler is None:
            return evaluate_model(self.model, dataset, self.splits.class_names, with_predictions=final,
                                  with_roc=final, **common)
        return evaluate_regression(self.model, dataset, c.task, self.objective.scaler, with_pairs=final, **common)

    def _end_epoch(self, epoch: int, epoch_train: dict, elapsed_s: float) -> None:
        """Validate the epoch, keep it if it is the best, write ``last/`` (and the best checkpoint)."""
        state = self.state
        self.loop.recalibrate_batch_norm(epoch)
        distributed.broadcast_buffers(self.model, self.context)
        self.loop.check_finite(epoch)
        val_started = time.perf_counter()
        val = card_summary(self._evaluate(self.splits.val, final=False))
        lr = self.optimizer.param_groups[0]["lr"]
        self.scheduler.step()
        state.history.append(self.records.history_entry(epoch, epoch_train, val, lr))
        state.wall_time += elapsed_s + (time.perf_counter() - val_started)
        improved = state.offer(epoch, val, self.config.select_on, lambda: checkpoint.eval_state_dict(self.model))
        state.epochs_done = epoch
        if self.writes:
            card = self.records.card(self.model, state, epoch, {"val": val})
            # last/ first: a kill between the two leaves last/ holding the new best, which resume publishes
            checkpoint.write_last(self.out, self.model, card,
                                  self.records.resume_state(state, epoch, self.optimizer, self.scheduler))
            if improved:
                checkpoint.write_checkpoint(self.out, self.model, card)
        distributed.barrier(self.context)
        self.reporter.emit("val", epoch, 0, 0, epoch_train["train_loss"],
                           epoch_train[f"train_{self.objective.running}"], epoch_train["images_per_s"], val=val)

    def _test(self) -> dict | None:
        state = self.state
        if state.best_state is not None:
            checkpoint.load_weights_into(self.model, state.best_state, "best epoch")
        if self.splits.test is None or len(self.splits.test) == 0:
            if self.writes and state.best is not None:  # the card says how far the run got (training.complete)
                card = self.records.card(self.model, state, state.best_epoch, {"val": state.best["val"]})
                checkpoint.write_checkpoint(self.out, self.model, card)
            distributed.barrier(self.context)
            return None
        report = self._evaluate(self.splits.test, final=True)
        if self.writes and state.best is not None:
            metrics = {"val": state.best["val"], "test": card_summary(report)}
            checkpoint.write_checkpoint(self.out, self.model, self.records.card(self.model, state, state.best_epoch,
                                                                                metrics))
        distributed.barrier(self.context)
        running = report["accuracy"] if self.objective.running == "accuracy" else report["mae"]
        self.reporter.emit("test", state.epochs_done, 0, 0, math.nan, running, state.images_per_s,
                           val=card_summary(report))
        return report

    def _result(self, cancelled: bool, test_report: dict | None) -> TrainResult:
        state = self.state
        if cancelled and state.best_state is not None:
            checkpoint.load_weights_into(self.model, state.best_state, "best epoch")
        self.model.eval()
        metrics = {"val": None if state.best is None else state.best["val"],
                   "test": None if test_report is None else card_summary(test_report)}
        card = (checkpoint.ModelCard.from_json(self.records.card(self.model, state, state.best_epoch or 0, metrics))
                if state.best is not None else None)
        return TrainResult(
            model=self.model, card=card, checkpoint=self.out if self.writes and state.best is not None else None,
            history=state.history, val_metrics=metrics["val"], test_metrics=test_report,
            best_epoch=state.best_epoch, cancelled=cancelled, train_time_s=state.train_time,
            images_per_s=state.images_per_s, device=device_name(self.device), extra={"transfer": state.transfer},
            budget_spent=self.budget_spent,
        )


def train(config: TrainConfig, progress: Callable[[Progress], None] | None = None,
          stop_event: threading.Event | None = None, data: DataSplits | None = None,
          progress_bar: bool = False, init_state: Mapping[str, torch.Tensor] | None = None) -> TrainResult:
    """Train ``config.model`` on ``config.data`` (or on ready ``data`` splits) and return the best model.

    ``progress(Progress)`` is called every few steps and after each validation (rank 0 only);
    setting ``stop_event`` ends the run at the next step, dropping the unfinished epoch (the
    ``last`` checkpoint of the previous one stays). ``progress_bar``: tqdm bars on stderr (the CLI).
    Raises :class:`TrainingError` for bad settings, a non-finite loss or CUDA running out of memory,
    :class:`DataError` for unusable data. Under ``torchrun`` the run is distributed (see
    :mod:`eqlens.core.distributed`).

    ``init_state``: eval-mode weights (e.g. :func:`checkpoint.eval_state_dict` of a trained model)
    that start the run like ``config.init_from`` does (both at once: :class:`TrainingError`); a
    resumed run keeps its own weights. The transfer is reported in ``result.extra["transfer"]`` and
    in the card's ``training.initialised_from``."""
    context = distributed.init_distributed(config.device)
    try:
        return _Run(config, context, progress, stop_event, data, progress_bar, init_state).run()
    finally:
        distributed.shutdown(context)
