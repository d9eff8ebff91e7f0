"""Continuing an interrupted run from ``OUT/last``: the settings must be those of the saved run, and
the weights, optimizer, schedule, :class:`RunState` and global random states come back as they were,
so a resumed run ends with the same weights as an uninterrupted one (on a deterministic device)."""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from dataclasses import MISSING, fields
from pathlib import Path

import torch

from .. import checkpoint
from ..core.run_config import TrainConfig
from ..data.splits import is_folder_spec, recorded_simulation_config, simulation_config
from ..errors import DataError, TrainingError
from ..simulation import SimulationConfig
from . import reporting
from .reporting import RunState
from .run_setup import GLOBAL_RNG_LOCK

# Settings that define what a run computes: resuming with any of them changed would silently mix runs.
RUN_DEFINING = ("model", "group", "data", "task", "data_seed", "seed", "batch_size", "lr", "weight_decay", "betas",
                "schedule", "select_on", "image_size", "train_size", "val_size", "test_size", "val_fraction",
                "test_fraction", "augment", "augment_mode", "circular_mask", "model_kwargs", "init_from",
                "steps_per_epoch", "crop", "fresh_data", "stream_start")


def will_resume(config: TrainConfig, out: Path | None) -> bool:
    """True when this call continues a run: ``resume`` asked and ``out`` holds a finished epoch."""
    return config.resume and out is not None and checkpoint.find_last(out) is not None


def run_simulation_config(record: Mapping) -> SimulationConfig | None:
    """The simulation config a run's config record (``RunRecords.config_record``, as saved in the resume
    state) says its data was rendered with, None for data not simulated by the trainer. A record without
    ``simulation_config`` (states written before 2026-12-02) resolves by the one rule of
    :func:`eqlens.data.splits.recorded_simulation_config`: its named config as drawn then, the vortex a line."""
    if "simulation_config" in record:
        config = record["simulation_config"]
        return None if config is None else recorded_simulation_config(record.get("data"), config)
    spec = record.get("data")
    if not isinstance(spec, str) or is_folder_spec(spec):
        return None
    try:
        return recorded_simulation_config(spec)
    except DataError:
        return None  # a name of no simulation config: the run was given its data


def saved_simulation_config(out: Path, config: TrainConfig) -> SimulationConfig | None:
    """The simulation config the run being resumed from ``out/last`` rendered its data with
    (:func:`run_simulation_config`), so the resumed run goes on with the same data even when the config of
    that name has changed since; None when there is no state, or it names other data (then
    :func:`check_settings` refuses the resume)."""
    last = checkpoint.find_last(out)
    if last is None:
        return None
    saved = checkpoint.load_state(last)["config"]
    if saved.get("data") != config.data:
        return None
    recorded = run_simulation_config(saved)
    if recorded is not None and not is_folder_spec(config.data):
        try:
            today = simulation_config(config.data)
        except DataError:  # a name no config has any more: nothing to compare with
            return recorded
        if today != recorded:
            warnings.warn(f"resuming {out}: its data is {config.data!r} as the run started on it "
                          f"({recorded.vortex_form or 'as recorded'}), not today's {config.data!r} "
                          f"({today.vortex_form or 'changed since'}); the run goes on with its own data",
                          stacklevel=2)
    return recorded


def check_settings(last: Path, saved: dict, now: dict, schedule: str) -> None:
    """Raise :class:`TrainingError` naming the first run-defining setting that differs between the saved
    run's config record and this call's (``epochs`` too under a cosine schedule, whose length it sets).
    A setting added after the state was written has its default there (e.g. task: classification); the
    simulation config a state does not record is the one it was rendered with (:func:`run_simulation_config`).
    Data handed to the trainer ready-made (no ``simulation_config`` now) is the caller's to match."""
    defaults = {f.name: f.default for f in fields(TrainConfig) if f.default is not MISSING}
    saved = {**defaults, **saved}
    for key in RUN_DEFINING + (("epochs",) if schedule == "cosine" else ()):
        if saved.get(key) != now.get(key):
            raise TrainingError(f"cannot resume from {last}: {key} was {saved.get(key)!r}, now {now.get(key)!r}")
    if now.get("simulation_config") is not None:
        before, after = run_simulation_config(saved), run_simulation_config(now)
        if before != after:
            changed = [k for k, v in after.to_dict().items() if before is None or getattr(before, k) != v]
            raise TrainingError(f"cannot resume from {last}: its data was rendered with another simulation config "
                                f"({', '.join(changed)} differ)")


def resume_run(out: Path, config: TrainConfig, config_record: dict, model: torch.nn.Module, optimizer, scheduler,
               state: RunState, writes: bool) -> None:
    """Load ``out/last`` into ``model``, ``optimizer``, ``scheduler`` and ``state`` and restore the global
    random states; nothing happens when no epoch finished yet (the run starts from scratch). Temporary files a
    killed write left in ``out`` are removed first (:func:`eqlens.checkpoint.remove_stale_temporaries`)."""
    if writes:
        checkpoint.remove_stale_temporaries(out)
    last = checkpoint.find_last(out)
    if last is None:
        return
    saved = checkpoint.load_state(last)
    check_settings(last, saved["config"], config_record, config.schedule)
    tensors, _ = checkpoint.read_checkpoint(last)
    checkpoint.load_weights_into(model, tensors, str(last))
    optimizer.load_state_dict(saved["optimizer"])
    scheduler.load_state_dict(saved["scheduler"])
    state.epochs_done, state.history, state.best = int(saved["epoch"]), list(saved["history"]), saved["best"]
    state.train_time, state.images_seen = float(saved["train_time_s"]), int(saved["images_seen"])
    state.wall_time = float(saved.get("wall_time_s", state.train_time))
    state.transfer = saved.get("transfer")  # how the run started, before it was interrupted
    _reconcile_best(out, last, saved, tensors, model, config.select_on, state, writes)
    with GLOBAL_RNG_LOCK:
        checkpoint.restore_rng_state(saved["rng"])


def _reconcile_best(out: Path, last: Path, saved: dict, last_tensors: dict, model: torch.nn.Module, select_on: str,
                    state: RunState, writes: bool) -> None:
    """The best weights the resumed run keeps, agreeing with the best record it goes on from.

    Every epoch writes ``last/`` before the best checkpoint ``OUT/``, so a run killed (or out of disk)
    between the two left ``OUT/`` one improvement behind: the resume state's best epoch is then
    ``last/``'s own, whose weights are published to ``OUT/`` here. Anything else that disagrees (a
    run of an older eqlens killed there, then resumed) keeps the checkpoint ``OUT/`` holds, with its
    own record, and says so."""
    best_epoch = state.best_epoch
    published = published_best(out)
    if best_epoch is None:
        return
    if published is not None and published[1] == best_epoch:
        state.best_state = published[0]
        return
    if best_epoch == int(saved["epoch"]):
        state.best_state = last_tensors
        if writes:
            _, card = checkpoint.read_checkpoint(last)
            checkpoint.write_checkpoint(out, model, card)  # the model holds last/'s weights now
        return
    if published is not None and published[1] is not None and published[2] is not None:
        tensors, epoch, val = published
        try:
            score = list(reporting.selection_score(select_on, val))
        except (KeyError, TypeError):
            score = None
        if score is not None:
            warnings.warn(f"{out}: the resume state names epoch {best_epoch} as the best, but the best "
                          f"checkpoint holds epoch {epoch} (an interrupted write); the run goes on from that "
                          f"checkpoint as its best", stacklevel=3)
            state.best, state.best_state = {"epoch": epoch, "score": score, "val": dict(val)}, tensors
            return
    raise TrainingError(f"cannot resume {out}: the best epoch {best_epoch} of the resume state has no "
                        f"weights left (the best checkpoint {out / checkpoint.WEIGHTS_FILE} is "
                        f"missing or of another epoch); start again in another --out")


def published_best(out: Path) -> tuple[dict, int | None, dict | None] | None:
    """``(tensors, best epoch, validation metrics)`` of the best checkpoint ``OUT/``, None if there is none."""
    if not (out / checkpoint.WEIGHTS_FILE).exists():
        return None
    tensors, card = checkpoint.read_checkpoint(out)
    epoch = card.training.get("best_epoch", card.training.get("epoch"))
    val = card.metrics.get("val")
    return tensors, None if epoch is None else int(epoch), val if isinstance(val, Mapping) else None
