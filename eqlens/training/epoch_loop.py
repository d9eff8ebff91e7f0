"""One epoch of training steps, and what decides how many epochs a call runs.

Every random draw of an epoch derives from ``(seed, epoch)`` (:func:`epoch_generator`): the order of
the training items, the augmentation, the batch-norm recalibration batches. So an epoch does not depend
on how the run got there, and a resumed run draws what an uninterrupted one would have.
"""

from __future__ import annotations

import copy
import math
import time
import warnings
from pathlib import Path

import numpy as np
import torch

from .. import checkpoint
from ..core import distributed
from ..core.run_config import TrainConfig
from ..core.tasks import Objective
from ..data.augment import Augmenter
from ..data.splits import DataSplits, iterate_batches
from ..errors import TrainingError
from .reporting import ProgressReporter, RunState
from .run_setup import GLOBAL_RNG_LOCK

EPOCH_WARN_S = 600  # an epoch longer than this loses more than 10 minutes when a campaign is killed
SYNC_EVERY = 10  # steps between host syncs of the running loss (each sync stalls a GPU pipeline)


def epoch_generator(*key: int) -> torch.Generator:
    """A CPU generator seeded by the integers ``key`` (e.g. ``(seed, epoch, purpose, rank)``)."""
    seed = int(np.random.SeedSequence([int(k) for k in key]).generate_state(1, dtype=np.uint64)[0])
    return torch.Generator().manual_seed(seed)


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
                         context: distributed.DistributedContext, stream_start: int = 0) -> list[list[int]]:
    """This rank's index batches of epoch ``epoch`` (from 1) of a fresh-data stream: the training
    stream is walked in order from item ``stream_start``, ``steps * batch_size * world_size`` new items
    per epoch, so no item is used twice in a run and resuming at any epoch needs no stored data."""
    world, rank = context.world_size, context.rank
    per_step = batch_size * world
    start = stream_start + (epoch - 1) * steps * per_step
    return [list(range(start + k * per_step + rank * batch_size, start + k * per_step + (rank + 1) * batch_size))
            for k in range(steps)]


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


class EpochLoop:
    """The training steps of a run: which batches an epoch takes, the steps themselves, precise batch
    norm after them, the checks that nothing went non-finite, and the time an epoch will take.

    ``checkpoint_dir``: where this rank writes checkpoints (None: it writes none), for error messages;
    setting ``stop_event`` ends the epoch at the next step."""

    def __init__(self, config: TrainConfig, context: distributed.DistributedContext, device: torch.device,
                 splits: DataSplits, objective: Objective, augmenter: Augmenter, model: torch.nn.Module, optimizer,
                 state: RunState, reporter: ProgressReporter, checkpoint_dir: Path | None, stop_event=None):
        self.config, self.context, self.device, self.splits = config, context, device, splits
        self.objective, self.augmenter, self.model, self.optimizer = objective, augmenter, model, optimizer
        self.state, self.reporter, self.checkpoint_dir, self.stop_event = state, reporter, checkpoint_dir, stop_event

    def index_batches(self, epoch: int) -> list[list[int]]:
        c = self.config
        if c.fresh_data:
            return stream_index_batches(epoch, c.steps_per_epoch, c.batch_size, self.context, c.stream_start)
        return epoch_index_batches(len(self.splits.train), c.batch_size, c.steps_per_epoch,
                                   epoch_generator(c.seed, epoch, 0), self.context)

    def _loader(self, batches, generator: torch.Generator, workers: int):
        turn = (lambda n: self.augmenter.scene_angles(n, generator)) if self.augmenter.turns_scenes else None
        return iterate_batches(self.splits.train, batches, self.device, workers, turn=turn)

    def train_epoch(self, net: torch.nn.Module, epoch: int) -> dict | None:
        """One epoch (a pass over the training shard, or ``steps_per_epoch`` batches) through ``net`` (the
        model, or its DDP wrapper): its training figures (``train_loss``, ``train_accuracy`` or
        ``train_mae``, ``time_s``, ``images_per_s``), or None if the stop event cut it short."""
        c = self.config
        batches = self.index_batches(epoch)
        augment_rng = epoch_generator(c.seed, epoch, 1, self.context.rank)
        autocast = torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=c.amp and self.device.type == "cuda")
        sums = torch.zeros(3, dtype=torch.float64, device=self.device)  # loss * n, running sum, n (all ranks)
        bar = self.reporter.bar(epoch, len(batches))
        net.train()
        start = time.perf_counter()
        for step, (x, y) in enumerate(self._loader(batches, augment_rng, c.workers), start=1):
            if self.stop_event is not None and self.stop_event.is_set():
                if bar is not None:
                    bar.close()
                return None
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
                self.reporter.emit("train", epoch, step, len(batches), loss_sum / n, running / n,
                                   n / max(elapsed, 1e-9), bar=bar)
        elapsed = time.perf_counter() - start
        if bar is not None:
            bar.close()
        loss_sum, running, n = sums.tolist()
        self.state.train_time += elapsed
        self.state.images_seen += int(n)
        return {"train_loss": loss_sum / n, f"train_{self.objective.running}": running / n,
                "time_s": elapsed, "images_per_s": n / max(elapsed, 1e-9)}

    def recalibrate_batch_norm(self, epoch: int) -> None:
        """"Precise BN": recompute every batch norm's running mean and variance as the plain average over
        ``recalibrate_bn`` training batches (the epoch's last ones, rendered and augmented again with a
        generator of their own) under the epoch's final weights. Training and validation draws are
        untouched: the global RNG states are restored afterwards, so a run stays reproducible."""
        c = self.config
        norms = [m for m in self.model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)
                 and m.track_running_stats]
        if c.recalibrate_bn == 0 or not norms:
            return
        batches = self.index_batches(epoch)[-c.recalibrate_bn:]
        generator = epoch_generator(c.seed, epoch, 2, self.context.rank)
        rng = checkpoint.capture_rng_state()
        momenta = [m.momentum for m in norms]
        for m in norms:
            m.reset_running_stats()
            m.momentum = None  # cumulative average over the batches below
        self.model.train()
        with torch.no_grad():
            for x, _ in self._loader(batches, generator, c.workers):
                self.model(self.augmenter.training(x, generator))
        for m, momentum in zip(norms, momenta, strict=True):
            m.momentum = momentum
        checkpoint.restore_rng_state(rng)

    def estimate_epoch_s(self, epoch: int) -> float:
        """Seconds epoch ``epoch`` will take, from two timed training steps on a copy of the model (the
        run's weights, optimizer and random states are left as they were) plus validation at the same
        rate. Raises :class:`TrainingError` when the time budget cannot hold one epoch."""
        c = self.config
        trial = copy.deepcopy(self.model).train()
        optimizer = torch.optim.Adam(trial.parameters(), lr=0.0)
        batches = self.index_batches(epoch)
        batch = batches[0]
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
        estimate = step_s * len(batches) + step_s / 3 * len(self.splits.val) / max(len(batch), 1)
        budget_s = 60.0 * c.time_budget_min
        if estimate > budget_s:
            raise TrainingError(f"one epoch takes about {estimate / 60:.1f} min here ({len(batches)} steps of "
                                f"{step_s:.2f} s and validation), more than the {c.time_budget_min:g} min budget; "
                                f"give more time or fewer --steps-per-epoch. Nothing was written.")
        if estimate > EPOCH_WARN_S:
            warnings.warn(f"an epoch takes about {estimate / 60:.1f} min: state is written once per epoch, so a killed "
                          f"run loses up to that much; fewer --steps-per-epoch keep it under 10 min", stacklevel=2)
        return estimate

    def _kept(self) -> str | None:
        """The last good checkpoint, for messages; None when none was written yet."""
        if self.checkpoint_dir is not None and checkpoint.find_last(self.checkpoint_dir):
            return f"{self.checkpoint_dir / checkpoint.LAST_DIR}"
        return None

    def _raise_nan(self, epoch: int, step: int):
        kept = self._kept()
        kept = f"the last good checkpoint is {kept}" if kept else "no checkpoint was written yet"
        raise TrainingError(f"loss is not finite (epoch {epoch}, by step {step}); {kept}. "
                            f"Try a lower --lr (now {self.config.lr:g}) or check the data for NaN pixels")

    def check_finite(self, epoch: int) -> None:
        """Raise :class:`TrainingError` when a parameter or buffer holds NaN or inf (a finite loss does not
        promise finite weights: a huge step, an inf running variance). Nothing of the epoch is written;
        the best and ``last`` checkpoints of the previous epochs stay as they are."""
        tensors = {**{f"parameter {k}": v.detach() for k, v in self.model.named_parameters()},
                   **{f"buffer {k}": v for k, v in self.model.named_buffers()}}
        bad = checkpoint.first_non_finite(tensors)
        if bad is None:
            return
        last = self._kept()
        if last:
            best = f"; the best checkpoint {self.checkpoint_dir} holds epoch {self.state.best_epoch}" \
                if self.state.best else ""
            kept = f"the last good checkpoint is {last}{best}"
        else:
            kept = "no checkpoint was written yet"
        raise TrainingError(f"the weights are not finite after epoch {epoch} ({bad} holds NaN or inf); nothing of "
                            f"this epoch was written, {kept}. Try a lower --lr (now {self.config.lr:g})")
