"""The training loop: ``train(TrainConfig) -> TrainResult``.

Per epoch: shuffle the training indices with a generator seeded by ``(seed, epoch)``, give each
rank its shard, render/load each batch on the device, augment (random rotation, flips for D_N,
circular mask), take an Adam step; then evaluate the validation split, keep the best epoch by
``config.select_on`` and write ``OUT/last`` (and ``OUT/`` when the epoch is the best so far).
After the last epoch the best weights are evaluated once on the test split, which never takes part
in selection, and the best checkpoint is rewritten with those test metrics.

``config.task`` picks the objective (:mod:`eqlens.training.targets`): classification (cross-entropy,
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
"""

from __future__ import annotations

import math
import random
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import MISSING, dataclass, field, fields
from pathlib import Path

import numpy as np
import torch

from .. import checkpoint
from ..checkpoint import transfer
from ..data.transforms import InputSpec
from ..errors import DataError, TrainingError
from ..groups import get_group
from . import distributed
from .augment import Augmenter
from .config import TrainConfig
from .data_sources import DataSplits, can_turn_scenes, dataset_targets, native_image_size, resolve_data
from .evaluate import evaluate_model
from .evaluate_regression import SUMMARY_EXCLUDES, evaluate_regression
from .targets import Objective, TargetScaler, is_regression, task_record

# Settings that define what a run computes: resuming with any of them changed would silently mix runs.
RUN_DEFINING = ("model", "group", "data", "task", "data_seed", "seed", "batch_size", "lr", "weight_decay", "betas",
                "schedule", "select_on", "image_size", "train_size", "val_size", "test_size", "val_fraction",
                "test_fraction", "augment", "augment_mode", "circular_mask", "model_kwargs", "init_from",
                "steps_per_epoch", "crop", "fresh_data")
# torch's default generator (model initialisation) and numpy's and Python's global ones are shared by every
# thread of a process: a run seeds them and builds its model under this lock, so concurrent runs (the app's
# jobs) never draw from each other's streams. Code that reseeds or restores them in a shared process takes it.
GLOBAL_RNG_LOCK = threading.RLock()
EPOCH_WARN_S = 600  # an epoch longer than this loses more than 10 minutes when a campaign is killed
SYNC_EVERY = 10  # steps between host syncs of the running loss (each sync stalls a GPU pipeline)


@dataclass
class Progress:
    """What the progress callback receives. ``phase``: ``"train"`` (every few steps), ``"val"``
    (after an epoch's validation; ``val`` holds its metrics), ``"test"`` (after the final test).
    Regression runs have ``acc`` NaN and report ``mae`` (physical units) instead."""

    phase: str
    epoch: int
    epochs: int
    step: int
    steps: int
    loss: float  # running mean over the epoch so far
    acc: float
    images_per_s: float
    val: dict | None = None
    best_epoch: int | None = None
    mae: float | None = None


@dataclass
class TrainResult:
    """The best model (eval mode, on the training device), its card and metrics.

    ``cancelled``: the stop event ended the run early (the unfinished epoch is dropped; test
    metrics are then None). ``test_metrics`` is the full :func:`evaluate_model` report (ROC curves,
    predictions); the card keeps a summary. ``extra["transfer"]``: where the initial weights came
    from (``source``: the ``init_from`` path or ``"in-memory state"``) and
    :meth:`WeightTransfer.to_dict` (``loaded`` count, ``skipped`` classifier keys with their shapes,
    ``missing``); None for a freshly initialised model."""

    model: torch.nn.Module
    card: dict
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


def choose_image_size(requested: int | None, native: int, model_spec) -> int:
    """``requested`` if given; else the data's size, minus one when the model needs odd sizes to be
    exactly invariant (stride-2 grids on even sizes are not symmetric under rot90)."""
    if requested is not None:
        return int(requested)
    if model_spec.odd_size_for_exactness and native % 2 == 0:
        return native - 1
    return native


def epoch_index_batches(n: int, batch_size: int, steps: int | None, generator: torch.Generator,
                        context: distributed.DistributedContext) -> list[list[int]]:
    """This rank's index batches for one epoch over a split of ``n`` items.

    A pass draws a permutation of ``range(n)`` from ``generator``, takes this rank's shard and cuts it
    into full batches (the remainder is dropped unless no full batch exists: then the whole shard is
    one batch). ``steps=None``: one pass. ``steps=k``: the first ``k`` batches of as many passes as
    that takes (each pass a fresh permutation: an item repeats only in a later pass). Every rank
    draws the same permutations and gets the same number of batches (the shards are padded to
    equal length)."""
    batches: list[list[int]] = []
    while steps is None or len(batches) < steps:
        mine = distributed.shard_indices(torch.randperm(n, generator=generator), context).tolist()
        full = len(mine) // batch_size
        count = full if full > 0 else 1
        batches += [mine[i * batch_size : (i + 1) * batch_size] for i in range(count)]
        if steps is None:
            return batches
    return batches[:steps]


def stream_index_batches(epoch: int, steps: int, batch_size: int,
                         context: distributed.DistributedContext) -> list[list[int]]:
    """This rank's index batches of epoch ``epoch`` (from 1) of a fresh-data stream: the training
    stream is walked in order, ``steps * batch_size * world_size`` new items per epoch, so no item is
    used twice in a run and resuming at any epoch needs no stored data."""
    world, rank = context.world_size, context.rank
    per_step = batch_size * world
    start = (epoch - 1) * steps * per_step
    return [list(range(start + k * per_step + rank * batch_size, start + k * per_step + (rank + 1) * batch_size))
            for k in range(steps)]


def _epoch_generator(*key: int) -> torch.Generator:
    seed = int(np.random.SeedSequence([int(k) for k in key]).generate_state(1, dtype=np.uint64)[0])
    return torch.Generator().manual_seed(seed)


def _seed_everything(seed: int) -> None:
    torch.manual_seed(seed)
    np.random.seed(seed % 2**32)
    random.seed(seed)


def _device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return f"cuda ({torch.cuda.get_device_name(device)})"
    return device.type


def _selection_score(select_on: str, val: dict) -> tuple[float, ...]:
    """Higher is better; ties on the main metric go to the lower validation loss."""
    def finite(v):
        return v if v is not None and math.isfinite(v) else -math.inf

    loss = -val["loss"] if math.isfinite(val["loss"]) else -math.inf
    if select_on == "val_loss":
        return (loss,)
    if select_on == "val_mse":
        return (-val["mse"] if math.isfinite(val["mse"]) else -math.inf, loss)
    main = val["accuracy"] if select_on == "val_accuracy" else val["auc_macro"]
    return (finite(main), loss)


def card_summary(report: dict) -> dict:
    """The part of an evaluation report that goes into a model card (no curves, no per-image rows)."""
    return {k: v for k, v in report.items() if k not in ("roc", "predictions", *SUMMARY_EXCLUDES)}


def _oom_error(batch_size: int, err: Exception) -> TrainingError:
    return TrainingError(f"CUDA out of memory at batch size {batch_size}: try --batch-size {max(batch_size // 2, 1)}"
                         f" ({str(err).splitlines()[0]})")


class Budget:
    """A call's time budget in whole epochs: another epoch starts only while the time spent plus the
    longest epoch so far (before the first: ``estimate_s``) stays within ``minutes`` (None: no limit)."""

    def __init__(self, minutes: float | None, estimate_s: float):
        self.limit_s = None if minutes is None else 60.0 * float(minutes)
        self.estimate_s, self.spent_s, self.measured = float(estimate_s), 0.0, []

    def fits_another(self) -> bool:
        longest = max(self.measured) if self.measured else self.estimate_s
        return self.limit_s is None or self.spent_s + longest <= self.limit_s

    def record(self, seconds: float) -> None:
        self.spent_s += seconds
        self.measured.append(seconds)


class _Run:
    """One call of :func:`train`: holds the state the epoch loop shares."""

    def __init__(self, config: TrainConfig, context, progress, stop_event, data: DataSplits | None, progress_bar,
                 init_state: Mapping[str, torch.Tensor] | None = None):
        if init_state is not None and config.init_from is not None:
            raise TrainingError(f"give init_from ({config.init_from}) or init_state, not both: which weights "
                                f"should start the run?")
        self.config, self.context = config, context
        self.progress, self.stop_event, self.progress_bar = progress, stop_event, progress_bar
        if config.threads is not None:
            torch.set_num_threads(int(config.threads))
        self.device = distributed.resolve_device(config.device, context)
        self.out = Path(config.out) if config.out else None
        self.writes = self.out is not None and context.is_main
        self.splits = self._resolve_data(data)  # draws nothing from the global generators
        self.objective = Objective(config.task, self._fit_scaler())
        initial = None if self._will_resume() else self._initial_weights(init_state)  # read before the build: fail fast
        with GLOBAL_RNG_LOCK:  # the seed alone decides the initial weights, whatever else the process runs
            _seed_everything(config.seed)
            self.model = self._build_model()
        self.transfer = None
        if initial is not None:
            tensors, name = initial
            self.transfer = {"source": name, **transfer.initialise_from(self.model, tensors, name).to_dict()}
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=config.lr, betas=config.betas,
                                          weight_decay=config.weight_decay)
        if config.schedule == "cosine":
            self.scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(self.optimizer, T_max=config.epochs)
        else:
            self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, lambda epoch: 1.0)
        self.augmenter = Augmenter(get_group(config.group), config.augment, config.circular_mask, config.augment_mode)
        self.epochs_done, self.history = 0, []
        self.best: dict | None = None  # {"epoch", "score", "val"}
        self.best_state: dict[str, torch.Tensor] | None = None
        self.train_time, self.images_seen, self.wall_time = 0.0, 0, 0.0
        self.budget_spent = False
        if config.resume and self.out is not None:
            self._resume()

    # ------------------------------------------------------------ setup

    def _resolve_data(self, data: DataSplits | None) -> DataSplits:
        from .. import models

        try:
            self.model_spec = models.spec(self.config.model)
        except ValueError as err:
            raise TrainingError(str(err)) from None
        c = self.config
        if data is None:
            native = native_image_size(c.data)
            if c.crop is not None and c.crop > native:
                raise TrainingError(f"crop {c.crop} is larger than the {native} px images of {c.data!r}")
            size = choose_image_size(c.image_size, c.crop or native, self.model_spec)
            data = resolve_data(c.data, size, train_size=c.train_size, val_size=c.val_size, test_size=c.test_size,
                                val_fraction=c.val_fraction, test_fraction=c.test_fraction, data_seed=c.data_seed,
                                device=self.device, task=c.task, crop=c.crop, fresh_data=c.fresh_data)
        else:
            if c.image_size is not None and int(c.image_size) != data.image_size:
                raise TrainingError(f"image_size {c.image_size} requested, the given data is {data.image_size}")
            if c.fresh_data or c.crop is not None:
                raise TrainingError("fresh_data and crop describe how the trainer builds its data; "
                                    "ready splits were given")
        if len(data.train) == 0:
            raise DataError("the training split is empty")
        if c.augment and c.augment_mode == "scene" and not can_turn_scenes(data.train):
            raise TrainingError("augment_mode 'scene' renders turned scenes, which only simulated training data "
                                "can do; use augment_mode 'image' for files")
        if data.val is None or len(data.val) == 0:
            raise DataError("the validation split is empty: the best epoch cannot be selected")
        if not is_regression(c.task) and len(data.class_names) < 2:
            raise DataError(f"need at least two classes, found {data.class_names}")
        return data

    def _fit_scaler(self) -> TargetScaler | None:
        """Regression: the training split's target mean and std (the same on every rank and on resume:
        the split is fixed by the data settings)."""
        if not is_regression(self.config.task):
            return None
        return TargetScaler.fit(dataset_targets(self.splits.train))

    def _build_model(self):
        from .. import models

        c, size = self.config, self.splits.image_size
        try:
            model = models.create(c.model, num_classes=self.objective.num_outputs(self.splits.class_names),
                                  group=c.group, image_size=size, **c.model_kwargs)
        except (ValueError, TypeError) as err:
            raise TrainingError(str(err)) from None
        model.to(self.device)
        try:
            with torch.no_grad(), checkpoint.eval_mode(model):
                model(torch.zeros(1, 1, size, size, device=self.device))
        except RuntimeError as err:
            raise TrainingError(f"model {c.model!r} cannot take {size}x{size} images: "
                                f"{str(err).splitlines()[0]}") from None
        return model

    def _initial_weights(self, init_state: Mapping[str, torch.Tensor] | None) -> tuple[Mapping, str] | None:
        """``(tensors, name for messages)`` that start the model, None for a fresh initialisation."""
        c = self.config
        if c.init_from is not None:
            return transfer.read_init_checkpoint(c.init_from, c.model, c.group)[0], c.init_from
        if init_state is not None:
            return init_state, "in-memory state"
        return None

    def _will_resume(self) -> bool:
        return self.config.resume and self.out is not None and checkpoint.find_last(self.out) is not None

    def _resume(self) -> None:
        last = checkpoint.find_last(self.out)
        if last is None:
            return  # no epoch finished yet: start from scratch
        state = checkpoint.load_state(last)
        # A setting added after the state was written has its default there (e.g. task: classification).
        defaults = {f.name: f.default for f in fields(TrainConfig) if f.default is not MISSING}
        saved, now = {**defaults, **state["config"]}, self._config_record()
        for key in RUN_DEFINING + (("epochs",) if self.config.schedule == "cosine" else ()):
            if saved.get(key) != now.get(key):
                raise TrainingError(f"cannot resume from {last}: {key} was {saved.get(key)!r}, now {now.get(key)!r}")
        tensors, _ = checkpoint.read_checkpoint(last)
        checkpoint.load_weights_into(self.model, tensors, str(last))
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.epochs_done, self.history, self.best = int(state["epoch"]), list(state["history"]), state["best"]
        self.train_time, self.images_seen = float(state["train_time_s"]), int(state["images_seen"])
        self.wall_time = float(state.get("wall_time_s", self.train_time))
        self.transfer = state.get("transfer")  # how the run started, before it was interrupted
        self._reconcile_best(last, state, tensors)
        with GLOBAL_RNG_LOCK:
            checkpoint.restore_rng_state(state["rng"])

    def _reconcile_best(self, last: Path, state: dict, last_tensors: dict) -> None:
        """The best weights the resumed run keeps, agreeing with the best record it goes on from.

        Every epoch writes ``last/`` before the best checkpoint ``OUT/``, so a run killed (or out of disk)
        between the two left ``OUT/`` one improvement behind: the resume state's best epoch is then
        ``last/``'s own, whose weights are published to ``OUT/`` here. Anything else that disagrees (a
        run of an older eqlens killed there, then resumed) keeps the checkpoint ``OUT/`` holds, with its
        own record, and says so."""
        import warnings

        best_epoch = None if self.best is None else int(self.best["epoch"])
        published = self._published_best()
        if best_epoch is None:
            return
        if published is not None and published[1] == best_epoch:
            self.best_state = published[0]
            return
        if best_epoch == int(state["epoch"]):
            self.best_state = last_tensors
            if self.writes:
                _, card = checkpoint.read_checkpoint(last)
                checkpoint.write_checkpoint(self.out, self.model, card)  # the model holds last/'s weights now
            return
        if published is not None and published[1] is not None and published[2] is not None:
            tensors, epoch, val = published
            try:
                score = list(_selection_score(self.config.select_on, val))
            except (KeyError, TypeError):
                score = None
            if score is not None:
                warnings.warn(f"{self.out}: the resume state names epoch {best_epoch} as the best, but the best "
                              f"checkpoint holds epoch {epoch} (an interrupted write); the run goes on from that "
                              f"checkpoint as its best", stacklevel=3)
                self.best, self.best_state = {"epoch": epoch, "score": score, "val": dict(val)}, tensors
                return
        raise TrainingError(f"cannot resume {self.out}: the best epoch {best_epoch} of the resume state has no "
                            f"weights left (the best checkpoint {self.out / checkpoint.WEIGHTS_FILE} is "
                            f"missing or of another epoch); start again in another --out")

    def _published_best(self) -> tuple[dict, int | None, dict | None] | None:
        """``(tensors, best epoch, validation metrics)`` of the best checkpoint ``OUT/``, None if there is none."""
        if not (self.out / checkpoint.WEIGHTS_FILE).exists():
            return None
        tensors, card = checkpoint.read_checkpoint(self.out)
        training = card.get("training") or {}
        epoch = training.get("best_epoch", training.get("epoch"))
        val = (card.get("metrics") or {}).get("val")
        return tensors, None if epoch is None else int(epoch), val if isinstance(val, Mapping) else None

    def _config_record(self) -> dict:
        record = self.config.to_dict()
        record["image_size"] = self.splits.image_size
        return record

    # ------------------------------------------------------------ the loop

    def run(self) -> TrainResult:
        c = self.config
        net = self.model
        if self.context.enabled:
            ids = [self.device.index] if self.device.type == "cuda" else None
            net = torch.nn.parallel.DistributedDataParallel(self.model, device_ids=ids)
        cancelled = False
        budget = Budget(c.time_budget_min, self._estimate_epoch_s() if c.time_budget_min is not None else 0.0)
        try:
            for epoch in range(self.epochs_done + 1, c.epochs + 1):
                if not budget.fits_another():
                    self.budget_spent = True
                    break
                started = time.perf_counter()
                if not self._train_epoch(net, epoch):
                    cancelled = True
                    break
                self._end_epoch(epoch, time.perf_counter() - started)
                budget.record(time.perf_counter() - started)
            test_report = None if cancelled else self._test()
        except torch.cuda.OutOfMemoryError as err:
            raise _oom_error(c.batch_size, err) from None
        return self._result(cancelled, test_report)

    def _estimate_epoch_s(self) -> float:
        """Seconds one epoch will take, from two timed training steps on a copy of the model (the
        run's weights, optimizer and random states are left as they were) plus validation at the same
        rate. Raises :class:`TrainingError` when the time budget cannot hold one epoch."""
        import copy
        import warnings

        from .data_sources import iterate_batches

        c = self.config
        trial = copy.deepcopy(self.model).train()
        optimizer = torch.optim.Adam(trial.parameters(), lr=0.0)
        batch = self._index_batches(self.epochs_done + 1)[0]
        times = []
        with GLOBAL_RNG_LOCK:  # it restores the global generators: no other run may be seeding them meanwhile
            rng = checkpoint.capture_rng_state()
            for _ in range(2):
                start = time.perf_counter()
                x, y = next(iterate_batches(self.splits.train, [batch], self.device, 0))
                loss = self.objective.loss(trial(self.augmenter.evaluation(x)), y)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                times.append(time.perf_counter() - start)
            checkpoint.restore_rng_state(rng)
        step_s = min(times)
        steps = len(self._index_batches(self.epochs_done + 1))
        estimate = step_s * steps + step_s / 3 * len(self.splits.val) / max(len(batch), 1)
        budget_s = 60.0 * c.time_budget_min
        if estimate > budget_s:
            raise TrainingError(f"one epoch takes about {estimate / 60:.1f} min here ({steps} steps of {step_s:.2f} s "
                                f"and validation), more than the {c.time_budget_min:g} min budget; give more time "
                                f"or fewer --steps-per-epoch. Nothing was written.")
        if estimate > EPOCH_WARN_S:
            warnings.warn(f"an epoch takes about {estimate / 60:.1f} min: state is written once per epoch, so a killed "
                          f"run loses up to that much; fewer --steps-per-epoch keep it under 10 min", stacklevel=2)
        return estimate

    def _index_batches(self, epoch: int) -> list[list[int]]:
        c = self.config
        if c.fresh_data:
            return stream_index_batches(epoch, c.steps_per_epoch, c.batch_size, self.context)
        return epoch_index_batches(len(self.splits.train), c.batch_size, c.steps_per_epoch,
                                   _epoch_generator(c.seed, epoch, 0), self.context)

    def _train_epoch(self, net, epoch: int) -> bool:
        """One epoch (a pass over the training shard, or ``steps_per_epoch`` batches); False if the stop
        event cut it short."""
        from .data_sources import iterate_batches

        c = self.config
        batches = self._index_batches(epoch)
        augment_rng = _epoch_generator(c.seed, epoch, 1, self.context.rank)
        autocast = torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=c.amp and self.device.type == "cuda")
        sums = torch.zeros(3, dtype=torch.float64, device=self.device)  # loss * n, running sum, n (all ranks)
        bar = self._bar(epoch, len(batches))
        net.train()
        start = time.perf_counter()
        turn = (lambda n: self.augmenter.scene_angles(n, augment_rng)) if self.augmenter.turns_scenes else None
        loader = iterate_batches(self.splits.train, batches, self.device, c.workers, turn=turn)
        for step, (x, y) in enumerate(loader, start=1):
            if self.stop_event is not None and self.stop_event.is_set():
                if bar is not None:
                    bar.close()
                return False
            x = self.augmenter.training(x, augment_rng)
            with autocast:
                logits = net(x)
            loss = self.objective.loss(logits, y)
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self.optimizer.step()
            batch = torch.stack([loss.detach().double() * len(y), self.objective.running_sum(logits, y),
                                 torch.tensor(float(len(y)), dtype=torch.float64, device=self.device)])
            sums += distributed.all_reduce_sum(batch, self.context)
            if step % SYNC_EVERY == 0 or step == len(batches):
                loss_sum, running, n = sums.tolist()
                if not math.isfinite(loss_sum):
                    self._raise_nan(epoch, step)
                elapsed = time.perf_counter() - start
                self._report(self._progress("train", epoch, step, len(batches), loss_sum / n, running / n,
                                            n / max(elapsed, 1e-9)), bar, step)
        elapsed = time.perf_counter() - start
        if bar is not None:
            bar.close()
        loss_sum, running, n = sums.tolist()
        self.train_time += elapsed
        self.images_seen += int(n)
        self._epoch_train = {"train_loss": loss_sum / n, f"train_{self.objective.running}": running / n,
                             "time_s": elapsed, "images_per_s": n / max(elapsed, 1e-9)}
        return True

    def _progress(self, phase: str, epoch: int, step: int, steps: int, loss: float, running: float,
                  images_per_s: float, val: dict | None = None) -> Progress:
        """A Progress event; the running figure goes to ``acc`` or (regression) ``mae``."""
        acc, mae = (running, None) if self.objective.running == "accuracy" else (math.nan, running)
        return Progress(phase, epoch, self.config.epochs, step, steps, loss, acc, images_per_s, val=val,
                        best_epoch=self._best_epoch(), mae=mae)

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

    def _history_entry(self, epoch: int, val: dict, lr: float) -> dict:
        keys = ("mse", "mae", "r2") if self.objective.scaler is not None else ("accuracy", "auc_macro")
        return {"epoch": epoch, **self._epoch_train, "val_loss": val["loss"],
                **{f"val_{k}": val[k] for k in keys}, "lr": lr, "bn_recalibrated": self.config.recalibrate_bn}

    def _recalibrate_batch_norm(self, epoch: int) -> None:
        """"Precise BN": recompute every batch norm's running mean and variance as the plain average over
        ``recalibrate_bn`` training batches (the epoch's last ones, rendered and augmented again with a
        generator of their own) under the epoch's final weights. Training and validation draws are
        untouched: the global RNG states are restored afterwards, so a run stays reproducible."""
        from .data_sources import iterate_batches

        c = self.config
        norms = [m for m in self.model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)
                 and m.track_running_stats]
        if c.recalibrate_bn == 0 or not norms:
            return
        batches = self._index_batches(epoch)[-c.recalibrate_bn:]
        generator = _epoch_generator(c.seed, epoch, 2, self.context.rank)
        turn = (lambda n: self.augmenter.scene_angles(n, generator)) if self.augmenter.turns_scenes else None
        rng = checkpoint.capture_rng_state()
        momenta = [m.momentum for m in norms]
        for m in norms:
            m.reset_running_stats()
            m.momentum = None  # cumulative average over the batches below
        self.model.train()
        with torch.no_grad():
            for x, _ in iterate_batches(self.splits.train, batches, self.device, c.workers, turn=turn):
                self.model(self.augmenter.training(x, generator))
        for m, momentum in zip(norms, momenta, strict=True):
            m.momentum = momentum
        checkpoint.restore_rng_state(rng)

    def _raise_nan(self, epoch: int, step: int):
        kept = f"the last good checkpoint is {self.out / checkpoint.LAST_DIR}" if self.writes and \
            checkpoint.find_last(self.out) else "no checkpoint was written yet"
        raise TrainingError(f"loss is not finite (epoch {epoch}, by step {step}); {kept}. "
                            f"Try a lower --lr (now {self.config.lr:g}) or check the data for NaN pixels")

    def _check_finite(self, epoch: int) -> None:
        """Raise :class:`TrainingError` when a parameter or buffer holds NaN or inf (a finite loss does not
        promise finite weights: a huge step, an inf running variance). Nothing of the epoch is written;
        the best and ``last`` checkpoints of the previous epochs stay as they are."""
        tensors = {**{f"parameter {k}": v.detach() for k, v in self.model.named_parameters()},
                   **{f"buffer {k}": v for k, v in self.model.named_buffers()}}
        bad = checkpoint.first_non_finite(tensors)
        if bad is None:
            return
        if self.writes and checkpoint.find_last(self.out):
            best = f"; the best checkpoint {self.out} holds epoch {self._best_epoch()}" if self.best else ""
            kept = f"the last good checkpoint is {self.out / checkpoint.LAST_DIR}{best}"
        else:
            kept = "no checkpoint was written yet"
        raise TrainingError(f"the weights are not finite after epoch {epoch} ({bad} holds NaN or inf); nothing of "
                            f"this epoch was written, {kept}. Try a lower --lr (now {self.config.lr:g})")

    def _end_epoch(self, epoch: int, elapsed_s: float) -> None:
        c = self.config
        self._recalibrate_batch_norm(epoch)
        distributed.broadcast_buffers(self.model, self.context)
        self._check_finite(epoch)
        self._val_started = time.perf_counter()
        val = card_summary(self._evaluate(self.splits.val, final=False))
        lr = self.optimizer.param_groups[0]["lr"]
        self.scheduler.step()
        self.history.append(self._history_entry(epoch, val, lr))
        self.wall_time += elapsed_s + (time.perf_counter() - self._val_started)
        score = list(_selection_score(c.select_on, val))
        improved = self.best is None or score > list(self.best["score"])
        if improved:
            self.best = {"epoch": epoch, "score": score, "val": val}
            self.best_state = checkpoint.eval_state_dict(self.model)
        self.epochs_done = epoch
        if self.writes:
            card = self._card(epoch, {"val": val})
            # last/ first: a kill between the two leaves last/ holding the new best, which resume publishes
            checkpoint.write_last(self.out, self.model, card, self._resume_state(epoch))
            if improved:
                checkpoint.write_checkpoint(self.out, self.model, card)
        distributed.barrier(self.context)
        self._report(self._progress("val", epoch, 0, 0, self._epoch_train["train_loss"],
                                    self._epoch_train[f"train_{self.objective.running}"],
                                    self._epoch_train["images_per_s"], val=val), None, 0)

    def _test(self) -> dict | None:
        if self.best_state is not None:
            checkpoint.load_weights_into(self.model, self.best_state, "best epoch")
        if self.splits.test is None or len(self.splits.test) == 0:
            if self.writes and self.best is not None:  # the card says how far the run got (training.complete)
                card = self._card(self.best["epoch"], {"val": self.best["val"]})
                checkpoint.write_checkpoint(self.out, self.model, card)
            distributed.barrier(self.context)
            return None
        report = self._evaluate(self.splits.test, final=True)
        if self.writes and self.best is not None:
            metrics = {"val": self.best["val"], "test": card_summary(report)}
            checkpoint.write_checkpoint(self.out, self.model, self._card(self.best["epoch"], metrics))
        distributed.barrier(self.context)
        running = report["accuracy"] if self.objective.running == "accuracy" else report["mae"]
        self._report(self._progress("test", self.epochs_done, 0, 0, math.nan, running, self._images_per_s(),
                                    val=card_summary(report)), None, 0)
        return report

    # ------------------------------------------------------------ records

    def _best_epoch(self) -> int | None:
        return None if self.best is None else int(self.best["epoch"])

    def _images_per_s(self) -> float:
        return self.images_seen / self.train_time if self.train_time > 0 else 0.0

    def _card(self, epoch: int, metrics: dict) -> dict:
        training = {
            "config": self._config_record(),
            "epoch": epoch,
            "epochs_done": self.epochs_done,
            "best_epoch": self._best_epoch(),
            "selected_on": self.config.select_on,
            "device": _device_name(self.device),
            "world_size": self.context.world_size,
            "train_time_s": self.train_time,
            "wall_time_s": self.wall_time,
            "images_seen": self.images_seen,
            "fresh_data": self.config.fresh_data,
            "complete": self.epochs_done >= self.config.epochs,
            "images_per_s": self._images_per_s(),
            "initialised_from": self.transfer,
        }
        input_spec = InputSpec(self.splits.image_size, self.config.crop, self.config.circular_mask).to_record()
        return checkpoint.make_card(self.model, class_names=self.splits.class_names, group=self.config.group,
                                    data=self.splits.description, training=training, metrics=metrics,
                                    history=self.history, input_spec=input_spec,
                                    task=task_record(self.config.task, self.objective.scaler))

    def _resume_state(self, epoch: int) -> dict:
        return {
            "format": checkpoint.FORMAT,
            "epoch": epoch,
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "best": self.best,
            "history": self.history,
            "train_time_s": self.train_time,
            "wall_time_s": self.wall_time,
            "images_seen": self.images_seen,
            "config": self._config_record(),
            "transfer": self.transfer,
            "rng": checkpoint.capture_rng_state(),
        }

    def _bar(self, epoch: int, steps: int):
        if not (self.progress_bar and self.context.is_main):
            return None
        from tqdm.auto import tqdm

        return tqdm(total=steps, desc=f"epoch {epoch}/{self.config.epochs}", unit="batch", leave=True)

    def _report(self, p: Progress, bar, step: int) -> None:
        if bar is not None:
            bar.update(step - bar.n)
            running = {"acc": f"{p.acc:.3f}"} if p.mae is None else {"mae": f"{p.mae:.4f}"}
            bar.set_postfix(loss=f"{p.loss:.4f}", **running, img_s=f"{p.images_per_s:.0f}")
        if self.progress is not None and self.context.is_main:
            self.progress(p)

    def _result(self, cancelled: bool, test_report: dict | None) -> TrainResult:
        if cancelled and self.best_state is not None:
            checkpoint.load_weights_into(self.model, self.best_state, "best epoch")
        self.model.eval()
        metrics = {"val": None if self.best is None else self.best["val"],
                   "test": None if test_report is None else card_summary(test_report)}
        card = self._card(self._best_epoch() or 0, metrics) if self.best is not None else {}
        return TrainResult(
            model=self.model, card=card, checkpoint=self.out if self.writes and self.best is not None else None,
            history=self.history, val_metrics=metrics["val"], test_metrics=test_report,
            best_epoch=self._best_epoch(), cancelled=cancelled, train_time_s=self.train_time,
            images_per_s=self._images_per_s(), device=_device_name(self.device), extra={"transfer": self.transfer},
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
    :mod:`eqlens.training.distributed`).

    ``init_state``: eval-mode weights (e.g. :func:`checkpoint.eval_state_dict` of a trained model)
    that start the run like ``config.init_from`` does (both at once: :class:`TrainingError`); a
    resumed run keeps its own weights. The transfer is reported in ``result.extra["transfer"]`` and
    in the card's ``training.initialised_from``."""
    context = distributed.init_distributed(config.device)
    try:
        return _Run(config, context, progress, stop_event, data, progress_bar, init_state).run()
    finally:
        distributed.shutdown(context)
