"""Runs as files: ``runs/NAME.toml`` holds one :class:`TrainConfig` (its ``[train]`` table) and the weights it
starts from (``[init]``: a weights digest, :func:`eqlens.checkpoint.transfer.weights_digest`), so
``eqlens train --config runs/NAME.toml`` reproduces the run from its file alone (see docs/training.md, "Runs").

A run file::

    description = "the varied flagship: gcnn C4 with ring means, fine-tuned on model_i_varied"
    [train]
    data = "model_i_varied"
    crop = 81
    fresh_data = true
    steps_per_epoch = 400
    model_kwargs = { radial_bins = 6 }
    [init]
    weights = "sha256:5f1c..."          # the weights themselves, wherever they lie
    found_at = "checkpoints/model_i_flagship"   # where they were when the file was written (a hint only)

Without ``[init]`` the run starts from a fresh initialisation of ``train.model``. ``train.out`` defaults to
``campaigns/NAME``, and ``resume`` is always on: running the file again continues it. The time budget,
threads and device belong to the call (``--hours``, ``--threads``, ``--device``), not to the run: they do not
change what it computes. Model, group, image size and the builder's hyper-parameters not given in
``[train]`` come from the init checkpoint's card, as ``--init-from`` takes them.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, fields
from pathlib import Path

import tomllib

from ..core.run_config import TrainConfig
from ..errors import TrainingError

MAX_RUN_FILE_BYTES = 64 * 1024
RUNS_DIR = "runs"
CAMPAIGNS_DIR = "campaigns"
# Settings of the call, not of the run: refused in a run file.
CALL_SETTINGS = ("time_budget_min", "threads", "device", "resume", "workers")
INIT_KEYS = ("weights", "found_at")


@dataclass(frozen=True)
class RunFile:
    """One parsed run file: ``name`` (the file's stem), ``description``, the ``train`` settings as written
    (a TrainConfig's fields, before the init checkpoint fills the architecture in), ``init_weights`` (a
    ``"sha256:..."`` digest or None) and ``file_sha256`` (of the file's bytes, for the ledger)."""

    name: str
    description: str
    train: dict
    init_weights: str | None
    init_found_at: str | None
    file_sha256: str
    path: str

    @property
    def out(self) -> str:
        return str(self.train.get("out") or f"{CAMPAIGNS_DIR}/{self.name}")


def read_run_file(path) -> RunFile:
    """Parse and check ``path``; :class:`TrainingError` naming the problem (size, TOML, an unknown key, a
    call setting in the file, an init without a digest)."""
    from ..checkpoint.transfer import DIGEST_PREFIX

    path = Path(path)
    try:
        size = path.stat().st_size
        if size > MAX_RUN_FILE_BYTES:
            raise TrainingError(f"run file {path} is {size} bytes; at most {MAX_RUN_FILE_BYTES} are read")
        raw = path.read_bytes()
    except OSError as err:
        raise TrainingError(f"cannot read the run file {path}: {err.strerror or err}") from None
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as err:
        raise TrainingError(f"run file {path} is not TOML: {err}") from None
    unknown = set(data) - {"description", "train", "init"}
    if unknown:
        raise TrainingError(f"run file {path}: unknown top-level keys {sorted(unknown)} (description, train, init)")
    train = data.get("train", {})
    init = data.get("init", {})
    if not isinstance(train, dict) or not isinstance(init, dict):
        raise TrainingError(f"run file {path}: [train] and [init] must be tables")
    known = {f.name for f in fields(TrainConfig)}
    bad = sorted(set(train) - known)
    if bad:
        raise TrainingError(f"run file {path}: [train] has keys no TrainConfig field has: {bad}")
    call = sorted(set(train) & set(CALL_SETTINGS))
    if call:
        raise TrainingError(f"run file {path}: {call} belong to the call (--hours, --threads, --device), not the run")
    if "init_from" in train:
        raise TrainingError(f"run file {path}: name the starting weights in [init] weights = \"sha256:...\", "
                            "not by a path that may be replaced")
    bad = sorted(set(init) - set(INIT_KEYS))
    if bad:
        raise TrainingError(f"run file {path}: [init] takes {list(INIT_KEYS)}, not {bad}")
    weights = init.get("weights")
    if init and (not isinstance(weights, str) or not weights.startswith(DIGEST_PREFIX)):
        raise TrainingError(f"run file {path}: [init] weights must be a digest \"sha256:<64 hex>\", got {weights!r}")
    description = data.get("description", "")
    if not isinstance(description, str):
        raise TrainingError(f"run file {path}: description must be a string")
    found_at = init.get("found_at")
    return RunFile(name=path.stem, description=description, train=dict(train), init_weights=weights,
                   init_found_at=None if found_at is None else str(found_at),
                   file_sha256=hashlib.sha256(raw).hexdigest(), path=str(path))


def train_config(run: RunFile, *, time_budget_min: float | None = None, threads: int | None = None,
                 device: str | None = None, out: str | None = None) -> TrainConfig:
    """The run's :class:`TrainConfig`: the file's settings, ``init_from`` the digest, the architecture the
    init checkpoint's where the file gives none, ``out`` (the run's own folder unless another is given, e.g.
    to reproduce a finished run) and ``resume`` as the module says, and the call's budget, threads and device."""
    from .. import checkpoint
    from ..checkpoint.transfer import card_architecture, find_weights

    settings = dict(run.train)
    if run.init_weights is not None:
        held = card_architecture(checkpoint.read_card(find_weights(run.init_weights)))
        for key in ("model", "group", "image_size"):
            settings.setdefault(key, held[key])
        if settings["model"] == held["model"]:
            settings["model_kwargs"] = {**held["model_kwargs"], **settings.get("model_kwargs", {})}
        settings["init_from"] = run.init_weights
    if "model" not in settings:
        raise TrainingError(f"run file {run.path}: [train] names no model and [init] no weights to take it from")
    call = {"time_budget_min": time_budget_min, "threads": threads}
    if device is not None:
        call["device"] = device
    return TrainConfig(**{**settings, "out": out or run.out, "resume": True, **call})
