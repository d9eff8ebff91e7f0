"""Training runs read back from the checkpoints folder: what each one is (complete, partial, being
trained now), its history per epoch, and the :class:`~eqlens.core.run_config.TrainConfig` that continues it
(``resume`` in its own folder, from ``last/``) or fine-tunes a new run from its weights (``init_from``).
The same machinery as ``eqlens train --resume`` / ``--init-from``; no st.* here.

A run folder holds its best epoch (``model_card.json`` + weights) and, while it can go on, ``last/``: the
state after its last finished epoch. The card of ``last/`` is the newer record (its history runs to the
last finished epoch); the best card is read for the held-out test metrics.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from app import jobs, settings
from eqlens.errors import EqlensError


def read_card(folder: Path) -> dict | None:
    """The model card of a checkpoint folder as JSON (read by :func:`eqlens.checkpoint.read_card`, checked and
    completed), or None: missing, unreadable, not ours."""
    from eqlens.checkpoint import read_card as read

    try:
        return read(folder).to_json()
    except Exception:  # noqa: BLE001 - CheckpointError, DataError, or a ValueError of a card no JSON parser takes
        return None


def _count(value) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


@dataclass(frozen=True)
class Run:
    """One checkpoint folder. ``best``: the card beside the best weights ({} when only ``last/`` exists);
    ``last``: the card of ``last/`` (None without resume state); ``training_now``: a job of this server
    writes into it."""

    path: Path
    best: dict
    last: dict | None
    training_now: bool = False

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def card(self) -> dict:
        """The newest card: ``last/``'s when present (its history reaches the last finished epoch)."""
        return self.last if self.last is not None else self.best

    @property
    def training(self) -> dict:
        training = self.card.get("training")
        return training if isinstance(training, dict) else {}

    @property
    def config(self) -> dict | None:
        """The run's recorded :class:`TrainConfig` settings (None for a card without them)."""
        config = self.training.get("config")
        return config if isinstance(config, dict) else None

    @property
    def history(self) -> list[dict]:
        return [h for h in (self.card.get("history") or []) if isinstance(h, dict)]

    @property
    def epochs_done(self) -> int | None:
        done = _count(self.training.get("epochs_done"))
        return done if done is not None else (len(self.history) or None)

    @property
    def epochs(self) -> int | None:
        return _count((self.config or {}).get("epochs"))

    @property
    def partial(self) -> bool:
        """A card says the run stopped before its last epoch or its test (killed, cancelled, out of budget)."""
        cards = [c for c in (self.best, self.last) if c]
        return any((c.get("training") or {}).get("complete") is False for c in cards)

    @property
    def resumable(self) -> bool:
        """It holds resume state and no job trains it now: ``Continue`` can go on from its last epoch."""
        return self.last is not None and self.config is not None and not self.training_now

    @property
    def can_grow(self) -> bool:
        """More epochs can be added to a finished run (a cosine schedule is fixed by its epoch count)."""
        return (self.config or {}).get("schedule", "constant") != "cosine"

    @property
    def status(self) -> str:
        if self.training_now:
            return "training now"
        of = f" of {self.epochs}" if self.epochs else ""
        if self.partial:
            text = f"partial: epoch {self.epochs_done}{of}" if self.epochs_done is not None else "partial"
            return text if self.last is not None else f"{text}, no resume state"
        return f"complete: {self.epochs_done} epochs" if self.epochs_done else "complete"

    @property
    def label(self) -> str:
        return f"{self.name} ({self.status})"

    @property
    def created(self) -> str:
        return str(self.card.get("created") or self.best.get("created") or "")

    def metric(self, split: str, name: str) -> float | None:
        """``metrics[split][name]`` of the best card (``test`` is only there after a finished test)."""
        value = ((self.best.get("metrics") or {}).get(split) or {}).get(name)
        return float(value) if isinstance(value, (int, float)) and math.isfinite(value) else None

    def summary(self) -> dict:
        """One row of the run table."""
        model = (self.card.get("model") or {}).get("build_config") or {}
        from eqlens.data.splits import data_spec_now  # model_i_line for a model_i card before 2026-12-02
        from eqlens.models import is_plain  # a plain model's old card says C4: it has none

        data = self.card.get("data") or {}
        crop = (self.card.get("input") or {}).get("crop")
        return {"run": self.name, "status": self.status, "model": model.get("name"),
                "group": None if is_plain(model.get("name")) else model.get("group"), "data": data_spec_now(data),
                "input": f"{model.get('image_size')} px" + (f" (crop {crop})" if crop else ""),
                "best epoch": _count(self.training.get("best_epoch")),
                "val accuracy": self.metric("val", "accuracy"), "test accuracy": self.metric("test", "accuracy"),
                "created": self.created[:19].replace("T", " ")}


def model_and_group(model, group) -> str:
    """``"gcnn C4"``, or a plain model's name alone (its run's config names the group it augmented with,
    which is not the model's): how a page names a run's model in a line."""
    from eqlens.models import is_plain

    return str(model) if is_plain(model) or not group else f"{model} {group}"


def read_run(path: Path) -> Run | None:
    """The run in a checkpoint folder, or None when neither its best card nor ``last/`` can be read."""
    from eqlens.checkpoint import find_last

    path = Path(path)
    if not path.is_dir():
        return None
    last_dir = find_last(path)
    last = read_card(last_dir) if last_dir is not None else None
    best = read_card(path) or {}
    if not best and last is None:
        return None
    return Run(path, best, last, jobs.is_active(path))


def list_runs(folder: Path | None = None) -> list[Run]:
    """Every run folder in ``folder`` (default: the shipped checkpoints and the app's runs), newest first."""
    folders = [Path(folder)] if folder is not None else [Path(settings.CHECKPOINT_DIR), Path(settings.RUNS_DIR)]
    paths: dict[Path, Path] = {}  # one run once, under the first name it is listed by
    for f in folders:
        for p in sorted(f.iterdir()) if f.is_dir() else ():
            if not p.name.startswith("."):
                paths.setdefault(p.resolve(), p)
    found = [run for p in paths.values() if (run := read_run(p))]
    return sorted(found, key=lambda r: r.created, reverse=True)


def continue_config(run: Run, *, epochs: int | None = None, time_budget_min: float | None = None,
                    threads: int | None = None):
    """The :class:`TrainConfig` that goes on with ``run`` in its own folder from ``last/`` (``resume``), with
    the settings its card records, up to ``epochs`` in all, within ``time_budget_min`` minutes per call.
    Raises :class:`EqlensError` when it cannot be continued."""
    from eqlens.core.run_config import TrainConfig

    if run.training_now:
        raise EqlensError(f"{run.name} is being trained now")
    if run.last is None:
        raise EqlensError(f"{run.name} holds no resume state (last/): fine-tune it instead")
    record = run.config
    if record is None:
        raise EqlensError(f"{run.name}: the card does not record the run's settings")
    settings_now = {**record, "out": str(run.path), "resume": True, "init_from": record.get("init_from"),
                    "device": "auto", "time_budget_min": time_budget_min, "threads": threads}
    if epochs is not None:
        settings_now["epochs"] = int(epochs)
    try:
        return TrainConfig.from_dict(settings_now)
    except (TypeError, ValueError) as err:
        raise EqlensError(f"{run.name}: cannot continue with the card's settings ({err})") from None


def finetune_config(source: Path, card, *, out: str, data: str, epochs: int, lr: float, batch_size: int,
                    train_size: int, time_budget_min: float | None = None, steps_per_epoch: int | None = None,
                    fresh_data: bool = False, threads: int | None = None, augment_mode: str | None = None):
    """The :class:`TrainConfig` of a new run in ``out`` that starts from the weights of the checkpoint
    ``source`` (``init_from``): its architecture, task, input size, crop and mask come from ``card`` (a
    :class:`ModelCard` or its JSON), the data and budget from the arguments (other classes are fine:
    the classifier then starts fresh)."""
    from eqlens.checkpoint import ModelCard
    from eqlens.checkpoint.transfer import card_architecture
    from eqlens.core.run_config import TrainConfig

    card = ModelCard.from_json(card, str(source))
    small = max(2, int(train_size) // 8)
    return TrainConfig(
        **card_architecture(card), data=data, task=card.task, out=out, epochs=int(epochs), lr=float(lr),
        batch_size=int(batch_size), train_size=int(train_size), val_size=small, test_size=small,
        robustness_size=min(small, 8), eval_batch_size=int(batch_size), device="auto", init_from=str(source),
        crop=card.input.crop, circular_mask=card.input.circular_mask,
        augment_mode=augment_mode or "image", time_budget_min=time_budget_min, steps_per_epoch=steps_per_epoch,
        fresh_data=fresh_data, threads=threads)
