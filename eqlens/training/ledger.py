"""The ledger of runs: one JSON line per ``eqlens train --config`` call, appended by the machine to
``runs/ledger.jsonl`` beside the run files: which file (name and digest of its bytes), when, for how long,
how far the run got and what it scored (validation of the best epoch; test once the run is complete)."""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path

LEDGER_FILE = "ledger.jsonl"
_SHOWN = ("accuracy", "auc_macro", "mse", "r2", "n")


@dataclass(frozen=True)
class LedgerEntry:
    """One call of one run. ``epochs_done`` of ``epochs``; ``val`` / ``test``: the headline metrics of the
    best epoch (test: None until the run is complete, when the trainer scores it once)."""

    run: str
    file_sha256: str
    init_weights: str | None
    started_utc: str
    hours: float
    epochs_done: int
    epochs: int
    best_epoch: int | None
    val: dict | None
    test: dict | None
    images_per_s: float
    device: str
    checkpoint: str | None
    written_from: str = "call"  # "call": by eqlens train --config; "card": read back from a finished run's card


def _headline(metrics: dict | None) -> dict | None:
    if not metrics:
        return None
    out = {k: float(metrics[k]) for k in _SHOWN if isinstance(metrics.get(k), (int, float))}
    return {k: v for k, v in out.items() if math.isfinite(v)}


def entry_for(run, config, result, started: float) -> LedgerEntry:
    """The entry of one finished call: ``run`` a :class:`~eqlens.training.run_file.RunFile`, ``result`` the
    trainer's :class:`~eqlens.training.trainer.TrainResult`, ``started`` the call's ``time.time()``."""
    done = int(result.history[-1]["epoch"]) if result.history else 0
    return LedgerEntry(
        run=run.name, file_sha256=run.file_sha256, init_weights=run.init_weights,
        started_utc=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)),
        hours=round((time.time() - started) / 3600.0, 4), epochs_done=done, epochs=int(config.epochs),
        best_epoch=result.best_epoch, val=_headline(result.val_metrics),
        test=_headline(result.test_metrics) if done >= config.epochs else None,
        images_per_s=round(float(result.images_per_s), 2), device=str(result.device),
        checkpoint=None if result.checkpoint is None else str(result.checkpoint))


def entry_from_card(run, card) -> LedgerEntry:
    """The entry of a run finished before the ledger existed, read from its best checkpoint's
    :class:`~eqlens.checkpoint.ModelCard`: the whole run as one line (its hours the card's wall time over all
    calls, its start the card's creation time minus them: approximate when the calls had gaps),
    ``written_from="card"``."""
    import datetime as dt

    training = card.training
    wall_s = float(training.get("wall_time_s", 0.0))
    ended = dt.datetime.fromisoformat(str(card.created))
    started = (ended - dt.timedelta(seconds=wall_s)).astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    return LedgerEntry(
        run=run.name, file_sha256=run.file_sha256, init_weights=run.init_weights, started_utc=started,
        hours=round(wall_s / 3600.0, 4),
        epochs_done=int(training.get("epochs_done", 0)), epochs=int(training["config"]["epochs"]),
        best_epoch=training.get("best_epoch"), val=_headline(card.metrics.get("val")),
        test=_headline(card.metrics.get("test")) if training.get("complete") else None,
        images_per_s=round(float(training.get("images_per_s", 0.0)), 2), device=str(training.get("device", "")),
        checkpoint=run.out, written_from="card")


def append(directory, entry: LedgerEntry) -> Path:
    """Append ``entry`` to ``directory/ledger.jsonl`` (one line, flushed); the ledger's path."""
    path = Path(directory) / LEDGER_FILE
    with path.open("a", encoding="utf-8") as handle:
        handle.write(json.dumps(asdict(entry), sort_keys=True) + "\n")
    return path


def read(directory) -> list[LedgerEntry]:
    """Every entry of ``directory/ledger.jsonl``, oldest first ([] without a ledger)."""
    path = Path(directory) / LEDGER_FILE
    if not path.exists():
        return []
    return [LedgerEntry(**json.loads(line)) for line in path.read_text(encoding="utf-8").splitlines() if line]
