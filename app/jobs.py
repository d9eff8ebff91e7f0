"""A background training run: a plain object with its own thread, a stop event and a
lock-protected snapshot of progress. It never calls st.*; a polling fragment reads
:meth:`TrainingJob.snapshot`.

Jobs of different sessions run side by side in one server process. Each writes into its own folder
(:func:`claim_output_folder` creates it atomically, so two Starts in the same second get two folders),
no two running jobs share an output folder (:class:`JobConflict`), and each run's initial weights
depend on its seed alone: the trainer seeds and builds its model under
:data:`eqlens.training.trainer.GLOBAL_RNG_LOCK`, and shuffling and augmentation draw from generators
of the run's own seed.

Jobs belong to the server, not to the browser tab that started them: every started job is kept in a
process-wide registry under a token (:func:`find`, :func:`server_jobs`). The Train page puts the token in
its address (``?job=...``) and shows it, so a reload, or another browser given the token, finds the job
again with its progress and Cancel.
"""

from __future__ import annotations

import dataclasses
import secrets
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from eqlens.errors import EqlensError

# The names of eqlens.training.reporting.Progress, kept as they are (one vocabulary from trainer to app).
_NUMBER_KEYS = ("step", "steps", "epoch", "epochs", "loss", "accuracy", "mae", "val_loss", "val_accuracy", "val_mae",
                "lr", "images_per_s", "best_epoch")
_INTEGERS = ("step", "steps", "epoch", "epochs", "best_epoch")


def progress_record(event) -> dict:
    """The numbers of one :class:`eqlens.training.reporting.Progress` event (or a dict like it) under
    its own names: ``step``/``steps`` within ``epoch`` of ``epochs`` (1-based), ``loss``, ``accuracy``
    or ``mae``, ``images_per_s``, ``best_epoch``, and ``val_loss``/``val_accuracy`` from the ``val``
    metrics when present."""
    if dataclasses.is_dataclass(event) and not isinstance(event, type):
        raw = dataclasses.asdict(event)
    elif isinstance(event, dict):
        raw = dict(event)
    else:
        raw = {k: v for k, v in vars(event).items() if not k.startswith("_")}
    record = {}
    val = raw.pop("val", None)
    if isinstance(val, dict):
        raw.update({f"val_{k}": v for k, v in val.items() if k in ("loss", "accuracy", "mae")})
    for key, value in raw.items():
        if key in _NUMBER_KEYS and isinstance(value, (int, float)) and value == value:
            record[key] = int(value) if key in _INTEGERS else float(value)
        elif key == "phase" and isinstance(value, str):
            record[key] = value
    return record


class JobConflict(EqlensError):
    """Another running job of this server writes into the same folder."""


_ACTIVE_LOCK = threading.Lock()
_ACTIVE_OUTPUTS: set[str] = set()  # resolved output folders of the jobs running in this process


def _key(path) -> str:
    return str(Path(path).resolve())


def is_active(path) -> bool:
    """Whether a running job of this process writes into ``path``."""
    with _ACTIVE_LOCK:
        return _key(path) in _ACTIVE_OUTPUTS


def claim_output_folder(wanted) -> Path:
    """A new, empty folder: ``wanted`` itself or, when it exists, ``wanted_2``, ``wanted_3``, ... Created with
    an exclusive ``mkdir``, so concurrent callers asking for the same name each get their own folder."""
    wanted = Path(wanted)
    wanted.parent.mkdir(parents=True, exist_ok=True)
    for n in range(1, 10_000):
        path = wanted if n == 1 else wanted.with_name(f"{wanted.name}_{n}")
        try:
            path.mkdir()
        except FileExistsError:
            continue
        return path
    raise JobConflict(f"no free output folder named like {wanted}")


@dataclass
class JobSnapshot:
    state: str  # "starting" | "running" | "done" | "cancelled" | "failed"
    history: list = field(default_factory=list)
    latest: dict = field(default_factory=dict)
    fraction: float = 0.0
    message: str = ""
    result: object = None
    elapsed_s: float = 0.0

    @property
    def finished(self) -> bool:
        return self.state in ("done", "cancelled", "failed")


class TrainingJob:
    """Runs ``train_fn(config, progress=..., stop_event=...)`` in a daemon thread.

    ``train_fn`` defaults to :func:`eqlens.training.train`. ``cancel()`` sets the stop event; the
    trainer stops at its next check and the job ends "cancelled" (whatever it returns is kept). A refusal
    (:class:`EqlensError`, e.g. a time budget that cannot hold one epoch) ends it "failed" with the
    refusal's own message. ``remove_empty_out``: the output folder was made for this run
    (:func:`claim_output_folder`); if the run fails or stops before writing into it, it is removed."""

    def __init__(self, config, train_fn: Callable | None = None, on_done: Callable | None = None,
                 remove_empty_out: bool = False):
        self.config = config
        self._remove_empty_out = remove_empty_out
        self._train_fn = train_fn
        self._on_done = on_done
        self.stop_event = threading.Event()
        self._lock = threading.Lock()
        self._snapshot = JobSnapshot("starting")
        self._thread = threading.Thread(target=self._run, name="eqlens-train", daemon=True)
        self._started = time.perf_counter()
        self._ended: float | None = None  # the clock stops when the run does
        self._out_key: str | None = None
        self.token = secrets.token_urlsafe(12)  # finds the job again (registry), shown to who started it
        self.origin: dict = {}  # what the page that started it needs to show it again (its tab)

    def start(self) -> TrainingJob:
        """Start the thread. Raises :class:`JobConflict` when a running job writes into the same folder."""
        out = getattr(self.config, "out", None)
        self._out_key = None if out is None else _key(out)
        if self._out_key is not None:
            with _ACTIVE_LOCK:
                if self._out_key in _ACTIVE_OUTPUTS:
                    raise JobConflict(f"another training is writing into {out}: wait for it to end")
                _ACTIVE_OUTPUTS.add(self._out_key)
        try:
            self._thread.start()
        except BaseException:
            self._release()
            raise
        _register(self)
        return self

    def _release(self) -> None:
        if self._out_key is not None:
            with _ACTIVE_LOCK:
                _ACTIVE_OUTPUTS.discard(self._out_key)

    def cancel(self) -> None:
        self.stop_event.set()

    def join(self, timeout: float | None = None) -> bool:
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def snapshot(self) -> JobSnapshot:
        """A copy, safe to read while the thread goes on."""
        with self._lock:
            s = self._snapshot
            return dataclasses.replace(s, history=list(s.history), latest=dict(s.latest),
                                       elapsed_s=(self._ended or time.perf_counter()) - self._started)

    def _progress(self, event) -> None:
        """Keep the event: ``latest`` carries every number seen so far (the metrics above the chart), the
        history one record per event with its own numbers only, so a validation value sits at its epoch's
        end and is never carried over the training steps that follow."""
        record = progress_record(event)
        with self._lock:
            s = self._snapshot
            s.state = "running"
            if record.get("phase") == "test":
                s.latest["test_accuracy"] = record.get("accuracy")
                return
            if record.get("phase") == "val":
                record = {k: v for k, v in record.items() if k not in ("step", "steps")}
            s.latest.update(record)
            epochs, epoch = s.latest.get("epochs"), s.latest.get("epoch", 1)
            within = s.latest.get("step", 0) / s.latest["steps"] if s.latest.get("steps") else 0.0
            if record.get("phase") == "val":
                within = 1.0
            entry = dict(record, epoch=epoch, at_epoch=epoch - 1 + within)
            entry["global_step"] = (epoch - 1 + within) * (s.latest.get("steps") or 1)
            if epochs:
                s.fraction = min(1.0, (epoch - 1 + within) / epochs)
            s.history.append(entry)

    def _run(self) -> None:
        train_fn = self._train_fn
        if train_fn is None:
            from eqlens.training import train as train_fn
        with self._lock:
            self._snapshot.state = "running"
        try:
            result = train_fn(self.config, progress=self._progress, stop_event=self.stop_event)
            state = "cancelled" if self.stop_event.is_set() else "done"
            message = "cancelled" if state == "cancelled" else "finished"
            if state == "done" and getattr(result, "budget_spent", False):
                message = f"stopped at its time budget after epoch {self._epochs_done(result)}: continue it to go on"
        except EqlensError as err:  # a refusal (bad settings, a budget too small for one epoch): its own words
            result, state, message = None, "failed", str(err)
        except Exception as err:  # noqa: BLE001 - the message is shown in the app
            result, state = None, "failed"
            message = f"{type(err).__name__}: {err}"
            traceback.print_exc()
        if self._on_done is not None and result is not None:
            try:
                self._on_done(result)
            except Exception as err:  # noqa: BLE001
                state, message = "failed", f"after training: {type(err).__name__}: {err}"
        if self._remove_empty_out and state != "done":
            self._drop_empty_out()
        self._release()
        with self._lock:
            self._ended = time.perf_counter()
            self._snapshot.state, self._snapshot.result = state, result
            self._snapshot.message = message
            if state == "done":
                self._snapshot.fraction = 1.0

    def _epochs_done(self, result) -> str:
        card = getattr(result, "card", None)
        done = card.training.get("epochs_done") if card is not None else None
        epochs = getattr(self.config, "epochs", None)
        return f"{done} of {epochs}" if done is not None and epochs else str(done)

    def _drop_empty_out(self) -> None:
        """A run that failed or was stopped before writing anything leaves no empty folder behind."""
        out = getattr(self.config, "out", None)
        if out is None:
            return
        try:
            Path(out).rmdir()  # only an empty folder goes
        except OSError:
            pass


_JOBS_LOCK = threading.Lock()
_JOBS: dict[str, TrainingJob] = {}  # token -> every job this process started, oldest first
MAX_FINISHED_KEPT = 32  # finished jobs stay findable (their results) until this many newer ones have ended


def _register(job: TrainingJob) -> None:
    with _JOBS_LOCK:
        _JOBS[job.token] = job
        finished = [token for token, j in _JOBS.items() if j.snapshot().finished]
        for token in finished[:max(0, len(finished) - MAX_FINISHED_KEPT)]:
            del _JOBS[token]


def find(token: str | None) -> TrainingJob | None:
    """The job started under ``token`` in this process (running or recently finished), else None."""
    if not token:
        return None
    with _JOBS_LOCK:
        return _JOBS.get(str(token))


def server_jobs() -> list[TrainingJob]:
    """The jobs running in this process now, whichever session started them, oldest first."""
    with _JOBS_LOCK:
        jobs = list(_JOBS.values())
    return [job for job in jobs if not job.snapshot().finished]
