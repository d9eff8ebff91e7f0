"""Start a model from another one's weights: fine-tuning, few-shot learning, a new set of classes.

    transfer = initialise_from(model, tensors, "checkpoints/model_i_gcnn")   # model: any class count
    transfer.loaded, transfer.skipped          # copied keys; key -> (source shape, target shape)

Every tensor whose key and shape the target's eval-mode state dict shares is copied
(:func:`transfer_weights`); the classifier, whose shape depends on the number of outputs, keeps its
fresh initialisation. :func:`initialise_from` adds the checks a training run needs: finite weights,
and nothing but the classifier may differ, so a checkpoint of another architecture (other widths,
group or patch grid) is refused instead of silently starting most layers fresh.
:func:`read_init_checkpoint` reads a checkpoint for that through the safe readers of
:mod:`eqlens.checkpoint.io` (pickles are refused) and checks it holds the same model.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import torch

from ..errors import CheckpointError, TrainingError
from ..groups import DEFAULT_GROUP
from . import io as checkpoint
from .card import ModelCard

# build_config keys that are not architecture kwargs (TrainConfig has fields of their own for them)
_BUILD_SETTINGS = ("name", "num_classes", "group", "image_size")


@dataclass
class WeightTransfer:
    """What :func:`transfer_weights` did: keys copied, keys skipped for a shape mismatch
    (``key -> (source shape, target shape)``) and target keys the source lacks (left as initialised)."""

    loaded: list[str]
    skipped: dict[str, tuple[tuple[int, ...], tuple[int, ...]]]
    missing: list[str]

    def to_dict(self) -> dict:
        return {"loaded": len(self.loaded), "skipped": {k: [list(a), list(b)] for k, (a, b) in self.skipped.items()},
                "missing": self.missing}


def weights_digest(tensors: Mapping[str, torch.Tensor]) -> str:
    """SHA-256 (hex) of a state dict's content: every key in sorted order with its dtype, shape and raw
    bytes. The same tensors give the same digest whatever the file or the key order, and any changed
    value another one, so a card that records where its weights started
    (``training.initialised_from.source_sha256``) stays checkable after the file at that path is replaced:
    compare with ``weights_digest(read_checkpoint(path)[0])``."""
    digest = hashlib.sha256()
    for key in sorted(tensors):
        value = tensors[key].detach().to("cpu").contiguous()
        digest.update(f"{key}\0{value.dtype}\0{tuple(value.shape)}\0".encode())
        digest.update(value.reshape(-1).view(torch.uint8).numpy().tobytes() if value.numel() else b"")
    return digest.hexdigest()


def transfer_weights(source: Mapping[str, torch.Tensor], model: torch.nn.Module) -> WeightTransfer:
    """Copy every tensor of ``source`` whose key and shape ``model``'s eval-mode state dict shares.

    Works for any registered model: nothing is named, the shapes decide (a classifier built for
    another number of classes is what differs). ``model`` is left in eval mode, the mode state
    dicts are written in (escnn modules change keys between modes)."""
    model.eval()
    state = model.state_dict()
    loaded, skipped = [], {}
    for key, value in source.items():
        if key not in state:
            continue
        if tuple(value.shape) != tuple(state[key].shape):
            skipped[key] = (tuple(value.shape), tuple(state[key].shape))
            continue
        state[key] = value.detach().to(device=state[key].device, dtype=state[key].dtype)
        loaded.append(key)
    model.load_state_dict(state, strict=True)
    return WeightTransfer(loaded, skipped, sorted(set(state) - set(source)))


def architecture(build_config: Mapping, augment_group: str = DEFAULT_GROUP) -> dict:
    """The :class:`~eqlens.core.run_config.TrainConfig` settings that rebuild ``build_config``'s model with
    any number of outputs: ``model``, ``group``, ``image_size`` and ``model_kwargs``. ``group`` is the
    model's own; a plain model has none, so the run's ``group`` (its augmentation's) is
    ``augment_group``. A named variant is not carried over: a fine-tune may change a hyper-parameter (e.g.
    ``orbit_turns``), and its card then names the variant its own settings match, if any."""
    return {"model": build_config["name"], "group": build_config.get("group") or augment_group,
            "image_size": int(build_config["image_size"]),
            "model_kwargs": {k: v for k, v in build_config.items() if k not in _BUILD_SETTINGS and k != "variant"}}


def card_architecture(card: ModelCard) -> dict:
    """:func:`architecture` of a checkpoint's model: a plain model's run augments with the group its
    own run trained with (:attr:`ModelCard.probe_group`), not C4 by default."""
    return architecture(card.build_config, card.probe_group)


DIGEST_PREFIX = "sha256:"
# Folders searched for the checkpoint a digest names, relative to the working directory and the repository.
WEIGHT_ROOTS = ("checkpoints", "campaigns")
_REPOSITORY = Path(__file__).resolve().parents[2]


def is_digest(source) -> bool:
    """Whether ``source`` names weights by their digest (``"sha256:<64 hex>"``, :func:`weights_digest`)."""
    return isinstance(source, str) and source.startswith(DIGEST_PREFIX)


@functools.lru_cache(maxsize=256)
def _file_digest(path: str, mtime_ns: int, size: int) -> str:
    """:func:`weights_digest` of the checkpoint at ``path``, cached while the file keeps its time and size."""
    return weights_digest(checkpoint.read_checkpoint(Path(path).parent)[0])


def find_weights(digest: str, roots=None) -> Path:
    """The checkpoint folder whose ``model.safetensors`` holds the weights of ``digest`` (``"sha256:..."``),
    searched in ``roots`` (default: :data:`WEIGHT_ROOTS` under the working directory and the repository;
    best checkpoints only, never a ``last/`` state). A digest names weights whatever path holds them, so a
    run started from it is reproducible after the path it was first read from is replaced.
    :class:`CheckpointError` when no file holds them, or the digest is malformed."""
    from ..errors import CheckpointError

    value = digest.removeprefix(DIGEST_PREFIX)
    if len(value) != 64 or any(c not in "0123456789abcdef" for c in value):
        raise CheckpointError(f"{digest!r} is not a weights digest: expected sha256: and 64 lowercase hex digits")
    if roots is None:
        roots = list(dict.fromkeys(base / r for base in (Path.cwd(), _REPOSITORY) for r in WEIGHT_ROOTS))
    for root in roots:
        for weights in sorted(Path(root).glob(f"**/{checkpoint.WEIGHTS_FILE}")):
            if checkpoint.LAST_DIR in weights.parent.parts:
                continue
            try:
                stat = weights.stat()
                if _file_digest(str(weights.resolve()), stat.st_mtime_ns, stat.st_size) == value:
                    return weights.parent
            except (CheckpointError, OSError):
                continue
    raise CheckpointError(f"no checkpoint under {', '.join(str(r) for r in roots)} holds the weights {digest}")


def read_init_checkpoint(source, model: str, group: str) -> tuple[dict[str, torch.Tensor], ModelCard]:
    """``(tensors, card)`` of the checkpoint ``source`` (directory or ``.safetensors`` file), refusing
    with :class:`TrainingError` one that holds another model than ``model`` or, for a model built
    for a symmetry group, another group; :class:`CheckpointError` for a missing, corrupt or
    pickled file."""
    from ..models import spec

    tensors, card = checkpoint.read_checkpoint(find_weights(source) if is_digest(source) else source)
    held = card.name
    if held != model:
        raise TrainingError(f"{source} holds a {held!r} model, this run trains {model!r}: train {held!r} "
                            f"(eqlens train --init-from alone takes the checkpoint's model)")
    held_group = card.build_config.get("group", card.group)
    if spec(model).uses_group and held_group != group:
        raise TrainingError(f"{source} was trained for the group {held_group}, this run uses {group}: "
                            f"its weights are tied to {held_group}; train with group {held_group}")
    return tensors, card


def _class_dependent_keys(model: torch.nn.Module) -> set[str] | None:
    """The state-dict keys whose shapes follow the number of outputs (the classifier), found by building
    the same model with one more output and comparing shapes; ``None`` for a model without a
    ``build_config`` (then a shape rule decides, :func:`_class_dependent`)."""
    from ..models import create_from_config

    config = getattr(model, "build_config", None)
    if not config or "num_classes" not in config:
        return None
    other = create_from_config({**config, "num_classes": int(config["num_classes"]) + 1}).eval().state_dict()
    state = model.state_dict()
    return {k for k, v in state.items() if k in other and tuple(other[k].shape) != tuple(v.shape)}


def _class_dependent(source_shape: tuple[int, ...], target_shape: tuple[int, ...], num_outputs: int) -> bool:
    """True when the shapes differ only along axes whose target length is the number of outputs:
    a classifier (``[K, D]``, ``[K]``) rebuilt for another ``K``."""
    if len(source_shape) != len(target_shape):
        return False
    return all(a == b or b == num_outputs for a, b in zip(source_shape, target_shape, strict=True))


def _listing(items: list[str]) -> str:
    return ", ".join(items[:4]) + (f" and {len(items) - 4} more" if len(items) > 4 else "")


def initialise_from(model: torch.nn.Module, source: Mapping[str, torch.Tensor], name: str) -> WeightTransfer:
    """Copy ``source`` into ``model`` (:func:`transfer_weights`) for a run that starts from it.

    Only the classifier may stay fresh: every other tensor of ``model`` must be in ``source`` with
    its shape, and ``source`` may hold nothing ``model`` lacks; otherwise :class:`TrainingError`
    names the keys (``source`` is another architecture). A model with an ``adapt_source(source,
    image_size)`` method first rewrites weights of a related configuration into its own where that
    keeps the function (:meth:`eqlens.models.gcnn.GroupCNN.adapt_source`). Non-finite weights raise
    :class:`CheckpointError`. ``name`` (a path, "in-memory state") goes into the messages.
    ``model`` is left in eval mode."""
    for key, value in source.items():
        if value.is_floating_point() and not torch.isfinite(value).all():
            raise CheckpointError(f"{name}: weight {key!r} holds NaN or inf")
    build = getattr(model, "build_config", {}) or {}
    num_outputs = int(build.get("num_classes", -1))
    adapt = getattr(model, "adapt_source", None)
    if adapt is not None and "image_size" in build:  # e.g. a global-mean gcnn read as a ring-means one
        source = adapt(dict(source), int(build["image_size"]))
    model.eval()
    unexpected = sorted(set(source) - set(model.state_dict()))
    transfer = transfer_weights(source, model)
    skipped = transfer.skipped
    classifier = _class_dependent_keys(model)

    def may_differ(key: str) -> bool:
        return key in classifier if classifier is not None else _class_dependent(*skipped[key], num_outputs)

    alien = [f"{k} {skipped[k][0]} -> {skipped[k][1]}" for k in model.state_dict()  # in layer order
             if k in skipped and not may_differ(k)]
    problems = [f"shapes differ: {_listing(alien)}" if alien else "",
                f"missing from it: {_listing(transfer.missing)}" if transfer.missing else "",
                f"not in the model: {_listing(unexpected)}" if unexpected else ""]
    problems = [p for p in problems if p]
    if problems or not transfer.loaded:
        described = "; ".join(problems) or "it holds no tensors"
        raise TrainingError(f"{name} does not fit this model apart from its classifier ({described}): it holds "
                            f"another architecture (model_kwargs, group or image size differ)")
    return transfer
