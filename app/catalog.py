"""The models the pages offer: checkpoints on disk, uploaded checkpoints, untrained registry models.

Every model is built or loaded once per process (``st.cache_resource``) and shared by all
sessions; it is never changed after loading except by forward hooks (inspection, Grad-CAM), so
each :class:`LoadedModel` carries the lock that hook-based analysis must hold.
"""

from __future__ import annotations

import hashlib
import os
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path

import streamlit as st
import torch

from app import settings
from app.regression import RegressionTask, regression_task
from eqlens.checkpoint import ModelCard
from eqlens.errors import CheckpointError, EqlensError
from eqlens.groups import DEFAULT_GROUP, Group, get_group

DEFAULT_CLASS_NAMES = ("axion", "cdm", "no_sub")  # eqlens.simulation order (alphabetical)


@dataclass(frozen=True)
class ModelEntry:
    """A choice in a model selector; ``key`` identifies it across reruns and pages. ``broken``: why the
    entry cannot be loaded (its card unreadable), None for a good one; a broken entry stays in the list."""

    key: str
    label: str
    broken: str | None = None


MAX_REASON_CHARS = 240


def failure_reason(err: BaseException) -> str:
    """One line on why an entry failed: an eqlens refusal in its own words, anything else with its type."""
    text = str(err) if isinstance(err, EqlensError) else f"{type(err).__name__}: {err}"
    text = " ".join(text.split()) or type(err).__name__
    return text if len(text) <= MAX_REASON_CHARS else text[:MAX_REASON_CHARS - 3] + "..."


@dataclass(eq=False)
class LoadedModel:
    key: str
    label: str
    model: torch.nn.Module
    class_names: tuple[str, ...]
    image_size: int
    # The group the pages turn the model by (exact angles, orbits, channel views): the model's own; a plain
    # model has none, so its probe group (card.probe_group; an untrained one: the group of its entry key).
    group: Group
    trained: bool
    # What the model takes and decodes; an untrained model's says only that (no data, no metrics).
    card: ModelCard | None = None
    # The card's regression task (one output in physical units); None for a classifier.
    regression: RegressionTask | None = None
    lock: threading.RLock = field(default_factory=threading.RLock)
    # The native central crop the model's images take before resizing (card input.crop); None: whole frame.
    crop: int | None = None
    # Attributions and upright inspections per image (and angle, method, ...): shared, LRU, under lock.
    results: OrderedDict = field(default_factory=OrderedDict)

    @property
    def name(self) -> str:
        return (self.model.build_config or {}).get("name", "?")


def untrained_card(model, group: Group) -> ModelCard:
    """The card of a freshly built model: its build, the default class names, its whole frame at its
    size with the circular mask (as training would feed it); no data, no metrics."""
    from eqlens.checkpoint import make_card
    from eqlens.data.transforms import InputSpec

    config = model.build_config or {}
    num_classes = int(config.get("num_classes", 3))
    names = DEFAULT_CLASS_NAMES if num_classes == 3 else tuple(f"class {i}" for i in range(num_classes))
    spec = InputSpec(int(config.get("image_size", 65)), None, True)
    return ModelCard.from_json(make_card(model, class_names=names, group=group.name, data={}, training={},
                                         input_spec=spec.to_record()), "untrained model")


def _wrap(key: str, label: str, model, card: ModelCard | None, trained: bool, probe: str | None = None) -> LoadedModel:
    """``probe``: the group an untrained plain model is turned by (a card says its own: ``card.probe_group``)."""
    group = model.group or get_group(card.probe_group if card is not None else probe or DEFAULT_GROUP)
    card = card if card is not None else untrained_card(model, group)
    model.eval()
    return LoadedModel(key, label, model.to(settings.device()), card.class_names, card.input.image_size,
                       group, trained, card, regression_task(card), crop=card.input.crop)


def checkpoint_paths(folder: Path | None = None) -> list[Path]:
    """Checkpoints in ``folder``: sub-folders holding a ``model_card.json`` and single files. No folder: the
    shipped checkpoints (``settings.CHECKPOINT_DIR``), then the app's runs (``settings.RUNS_DIR``)."""
    if folder is None:
        shipped = _paths_in(Path(settings.CHECKPOINT_DIR))
        seen = {p.resolve() for p in shipped}
        return shipped + [p for p in _paths_in(Path(settings.RUNS_DIR)) if p.resolve() not in seen]
    return _paths_in(Path(folder))


def is_app_run(path: Path) -> bool:
    """Whether ``path`` is a run the Train page wrote (in ``settings.RUNS_DIR``), not a shipped checkpoint."""
    try:
        return Path(path).resolve().parent == Path(settings.RUNS_DIR).resolve()
    except OSError:
        return False


def _paths_in(folder: Path) -> list[Path]:
    if not folder.is_dir():
        return []
    found = []
    for path in sorted(folder.iterdir()):
        if path.name.startswith("."):
            continue
        if path.is_dir() and (path / "model_card.json").is_file():
            found.append(path)
        elif path.is_file() and path.suffix in (".pt", ".pth", ".ckpt", ".safetensors", ".eqlens"):
            found.append(path)
    return found


@dataclass(frozen=True)
class RunStatus:
    """How far the training run behind a checkpoint folder got, from its card (``training``).

    ``partial``: the card says the run stopped before its last epoch (``complete`` false: killed,
    cancelled or out of time budget); cards older than that field count as complete. ``resumable``: the
    folder holds the resume state of its last finished epoch (``last/``)."""

    partial: bool
    epochs_done: int | None
    epochs: int | None
    resumable: bool

    @property
    def label(self) -> str:
        if not self.partial:
            return "checkpoint"
        if self.epochs_done is not None and self.epochs is not None:
            return f"partial checkpoint: epoch {self.epochs_done} of {self.epochs}"
        return "partial checkpoint"


def run_status(path: Path) -> RunStatus:
    """The :class:`RunStatus` of a checkpoint folder (a single file or an unreadable card: complete)."""
    from eqlens.checkpoint import find_last

    card = _card_on_disk(path) if path.is_dir() else None
    if card is None or card.complete:
        return RunStatus(False, None, None, False)
    training = card.training
    config = training.get("config") if isinstance(training.get("config"), dict) else {}

    def count(value):
        return value if isinstance(value, int) and not isinstance(value, bool) else None

    return RunStatus(True, count(training.get("epochs_done")), count(config.get("epochs")),
                     find_last(path) is not None)


def partial_runs(folder: Path | None = None) -> list[Path]:
    """Checkpoint folders of runs that stopped early and can be resumed, none of them being trained now."""
    from app import jobs

    found = []
    for path in checkpoint_paths(folder):
        if path.is_dir() and not jobs.is_active(path):
            status = run_status(path)
            if status.partial and status.resumable:
                found.append(path)
    return found


def untrained_key(name: str, group: str) -> str:
    return f"untrained:{name}:{group}"


def shipped_key(name: str) -> str | None:
    """The entry key of the checkpoint folder ``name`` in the checkpoints folder, None when it is not there or
    is broken (the pages that open on it then fall back as when it is missing)."""
    path = Path(settings.CHECKPOINT_DIR) / name
    if not (path / "model_card.json").is_file() or checkpoint_entry(path).broken is not None:
        return None
    return f"ckpt:{path}"


def flagship_key() -> str | None:
    """The shipped invariant flagship (settings.COMPARE_DEFAULT), None when it is not there."""
    return shipped_key(settings.COMPARE_DEFAULT)


def plain_twin_key() -> str | None:
    """The flagship's plain twin: the first of settings.COMPARE_PARTNERS that is there, else None."""
    return next((key for key in map(shipped_key, settings.COMPARE_PARTNERS) if key is not None), None)


def entries(uploaded: dict | None = None) -> list[ModelEntry]:
    """Checkpoints first (on disk, then uploaded this session), then every untrained registry model."""
    from eqlens.models import names, spec

    preference = {name: rank for rank, name in enumerate(settings.DEFAULT_CHECKPOINTS)}
    paths = sorted(checkpoint_paths(), key=lambda p: preference.get(p.stem, len(preference)))  # stable
    found = [checkpoint_entry(p) for p in paths]
    found += [ModelEntry(key, f"{name} (uploaded)") for key, (name, _) in (uploaded or {}).items()]
    for name in names():
        group = DEFAULT_GROUP if spec(name).uses_group else "C1"
        found.append(ModelEntry(untrained_key(name, group), f"{name} (untrained)"))
    return found


def checkpoint_entry(path: Path) -> ModelEntry:
    """The entry of one checkpoint on disk. Whatever goes wrong reading it (a CheckpointError, a
    ValueError of a card holding a 5000-digit integer, any other exception) stays in this entry: it is
    listed as broken, with the reason, and every other entry is offered as usual."""
    from eqlens.checkpoint import read_card

    try:
        if path.is_dir():
            read_card(path)
        label = run_status(path).label
    except Exception as err:  # noqa: BLE001 - one entry's failure is that entry's, not the page's
        reason = failure_reason(err).replace(f"{path.parent}{os.sep}", "")  # the folder is the list's own
        return ModelEntry(f"ckpt:{path}", f"{path.stem} (broken: {reason})", broken=reason)
    return ModelEntry(f"ckpt:{path}", f"{path.stem} ({'app run, ' if is_app_run(path) else ''}{label})")


def _card_on_disk(path: Path) -> ModelCard | None:
    """The model card beside a checkpoint folder's weights (None for a single file or a card that cannot
    be read, for whatever reason)."""
    from eqlens.checkpoint import read_card

    try:
        return read_card(path) if path.is_dir() else None
    except Exception:  # noqa: BLE001 - a broken card is that entry's problem (checkpoint_entry says why)
        return None


def partner_index(first: LoadedModel | None, uploaded: dict | None = None) -> int:
    """Where :func:`entries` lists a good second model to compare ``first`` with: the first other
    checkpoint trained on the same data with the same classes (e.g. the plain twin of an equivariant
    model), else the first other entry."""
    from eqlens.data.splits import data_spec_now

    options = entries(uploaded)
    if first is not None:
        data = data_spec_now(first.card.data) if first.card is not None else None
        for i, entry in enumerate(options):
            if entry.key == first.key or not entry.key.startswith("ckpt:"):
                continue
            card = _card_on_disk(Path(entry.key.partition(":")[2]))
            if card is not None and data_spec_now(card.data) == data and card.class_names == first.class_names:
                return i
    others = [i for i, entry in enumerate(options) if first is None or entry.key != first.key]
    return others[0] if others else 0


@st.cache_resource(show_spinner="Loading checkpoint...", max_entries=16)
def _load_path(path: str, mtime: float) -> LoadedModel:
    from eqlens.checkpoint import load_checkpoint

    model, card = load_checkpoint(path, device=settings.DEVICE)
    return _wrap(f"ckpt:{path}", Path(path).stem, model, card, trained=True)


@st.cache_resource(show_spinner="Loading uploaded checkpoint...", max_entries=8)
def _load_bytes(key: str, name: str, data: bytes) -> LoadedModel:
    from eqlens.checkpoint import load_checkpoint

    model, card = load_checkpoint(data, device=settings.DEVICE)
    return _wrap(key, f"{name} (uploaded)", model, card, trained=True)


@st.cache_resource(show_spinner="Building model...", max_entries=16)
def _build_untrained(name: str, group: str, image_size: int, num_classes: int) -> LoadedModel:
    from eqlens.models import create
    from eqlens.training.trainer import GLOBAL_RNG_LOCK

    # The same untrained weights in every session and run; the lock keeps a training job that is seeding
    # and building its model at that moment out of this stream, and fork_rng leaves the global one as it was.
    with GLOBAL_RNG_LOCK, torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = create(name, num_classes=num_classes, group=group, image_size=image_size)
    label = f"{name} {group} (untrained)" if model.group is not None else f"{name} (untrained)"  # plain: no group
    return _wrap(untrained_key(name, group), label, model, None, trained=False, probe=group)


def load(key: str, uploaded: dict | None = None) -> LoadedModel:
    """The model behind an entry key. Raises CheckpointError (with a message for the user) for a
    checkpoint that cannot be read or built, whatever the exception underneath."""
    try:
        return _load(key, uploaded)
    except CheckpointError:
        raise
    except Exception as err:  # noqa: BLE001 - a broken entry: its reason, and the page goes on
        raise CheckpointError(failure_reason(err)) from err


def _load(key: str, uploaded: dict | None) -> LoadedModel:
    kind, _, rest = key.partition(":")
    if kind == "ckpt":
        path = Path(rest)
        if not path.exists():
            raise CheckpointError(f"checkpoint {path} is gone")
        return _runnable(_load_path(str(path), path.stat().st_mtime))
    if kind == "upload":
        if not uploaded or key not in uploaded:
            raise CheckpointError("the uploaded checkpoint is no longer in this session: upload it again")
        name, data = uploaded[key]
        return _runnable(_load_bytes(key, name, data))
    if kind == "untrained":
        name, _, group = rest.partition(":")
        return _build_untrained(name, group or DEFAULT_GROUP, settings.UNTRAINED_IMAGE_SIZE, len(DEFAULT_CLASS_NAMES))
    raise CheckpointError(f"unknown model entry {key!r}")


def _runnable(loaded: LoadedModel) -> LoadedModel:
    """``loaded`` if the app can run it: CheckpointError for an input side over
    ``settings.MAX_MODEL_IMAGE_SIZE`` (its orbit, attributions and attention would take gigabytes)."""
    if loaded.image_size > settings.MAX_MODEL_IMAGE_SIZE:
        raise CheckpointError(f"{loaded.label} takes {loaded.image_size} px images; the app runs models up to "
                              f"{settings.MAX_MODEL_IMAGE_SIZE} px (EQLENS_APP_MAX_IMAGE_SIZE); use eqlens evaluate "
                              f"for a larger one")
    return loaded


def upload_key(data: bytes) -> str:
    return "upload:" + hashlib.sha1(data).hexdigest()[:16]
