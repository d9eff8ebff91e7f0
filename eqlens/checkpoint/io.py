"""Checkpoints: weights in safetensors, a JSON model card, and a resume state.

A training run's output directory ``OUT/`` holds

- ``OUT/model.safetensors``: the best epoch's weights (selected on the validation split), with the
  model card embedded in the safetensors header metadata (key ``"eqlens_card"``);
- ``OUT/model_card.json``: the same card, readable;
- ``OUT/last/``: the latest finished epoch (``model.safetensors``, ``model_card.json``) plus
  ``state.pt`` (optimizer, schedule, epoch, best-so-far, history, RNG states) for ``--resume``.

The single-file form (uploads, sharing) is ``model.safetensors`` alone: its embedded card makes it
self-contained. :func:`load_checkpoint` takes a directory, a ``.safetensors`` file, raw bytes or a
binary file object. ``state.pt`` is read with ``torch.load(weights_only=True)``: it holds only
tensors and plain containers (RNG states are stored as tensors).

Weights are saved and loaded in eval mode: escnn modules change their state-dict keys between train
and eval mode. Every file is written atomically (temp file + ``os.replace``) and ``last/`` is
swapped in as a whole, so a kill at any moment leaves a complete previous checkpoint.
"""

from __future__ import annotations

import datetime as _dt
import io
import json
import os
import pickle
import shutil
import struct
from collections.abc import Mapping
from contextlib import contextmanager
from numbers import Integral
from pathlib import Path

import numpy as np
import torch

from .. import __version__
from ..errors import CheckpointError, DataError
from .jsonio import atomic_write_bytes, dumps, jsonable
from .targets import card_task

FORMAT = "eqlens-checkpoint"
FORMAT_VERSION = 1
WEIGHTS_FILE = "model.safetensors"
CARD_FILE = "model_card.json"
STATE_FILE = "state.pt"
LAST_DIR = "last"
CARD_METADATA_KEY = "eqlens_card"
# A card's model input side above this is refused: the app's orbits and attributions grow with its square
# (800 px took the app from 0.9 to 2.7 GB). Training refuses larger sizes too, so every card it writes loads.
MAX_CARD_IMAGE_SIZE = 512
MAX_CLASSES = 1000
MAX_BUILD_CONFIG_CHARS = 20_000


# ---------------------------------------------------------------- model card

def make_card(model, *, class_names, group: str, data: dict, training: dict, metrics: dict | None = None,
              history: list | None = None, input_spec: dict | None = None, task: dict | None = None) -> dict:
    """The model card: everything needed to rebuild, feed and judge the model, as plain data.

    ``task``: :func:`eqlens.training.targets.task_record` (default: classification); a regression
    card's ``class_names`` is the one output's name."""
    from ..models import count_parameters

    if getattr(model, "build_config", None) is None:
        raise CheckpointError("the model has no build_config: build it with eqlens.models.create")
    return jsonable({
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "eqlens_version": __version__,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "model": {"name": model.build_config["name"], "build_config": dict(model.build_config),
                  "parameters": count_parameters(model)},
        "group": group,
        "task": task or {"name": "classification"},
        "class_names": list(class_names),
        "input": input_spec or {},
        "data": data,
        "training": training,
        "metrics": metrics or {},
        "history": history or [],
    })


def _is_int(value) -> bool:
    return isinstance(value, Integral) and not isinstance(value, bool)


def _check_group(value, where: str, source: str) -> None:
    from ..groups import get_group

    if not isinstance(value, str) or len(value) > 8:
        raise CheckpointError(f"{source}: {where} must be a group name such as 'C4', got {_short(value)}")
    try:
        get_group(value)
    except ValueError as err:
        raise CheckpointError(f"{source}: {where}: {err}") from None


def _short(value) -> str:
    """``repr`` of a card value, cut short for messages (a card may hold anything)."""
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _validate_build(build: Mapping, source: str) -> None:
    """Types and ranges of ``model.build_config``: everything :func:`build_model` hands the builder."""
    name = build.get("name")
    if not isinstance(name, str) or not 0 < len(name) <= 64:
        raise CheckpointError(f"{source}: model card lacks model.build_config")
    if len(dumps(jsonable(dict(build)), indent=None)) > MAX_BUILD_CONFIG_CHARS:
        raise CheckpointError(f"{source}: model.build_config is longer than {MAX_BUILD_CONFIG_CHARS} characters")
    classes = build.get("num_classes")
    if classes is not None and not (_is_int(classes) and 1 <= classes <= MAX_CLASSES):
        raise CheckpointError(f"{source}: model.build_config.num_classes must be an integer in [1, {MAX_CLASSES}], "
                              f"got {_short(classes)}")
    if "group" in build:
        _check_group(build["group"], "model.build_config.group", source)
    size = build.get("image_size")
    if size is not None and not (_is_int(size) and 1 <= size <= MAX_CARD_IMAGE_SIZE):
        raise CheckpointError(f"{source}: model.build_config.image_size must be an integer in "
                              f"[1, {MAX_CARD_IMAGE_SIZE}], got {_short(size)}")


def _validate_input(card: Mapping, build: Mapping, source: str) -> dict:
    """The card's ``input`` record checked by :class:`InputSpec` (the one reader of it), returned complete
    (a card without it, older than the record: the build size, no crop, no mask)."""
    from ..data.transforms import InputSpec

    record = card.get("input")
    if record is None:
        record = {}
    try:
        spec = InputSpec.from_record(record, build.get("image_size"))
    except DataError as err:
        raise CheckpointError(f"{source}: model card: {err}") from None
    if spec.image_size > MAX_CARD_IMAGE_SIZE:
        raise CheckpointError(f"{source}: the model takes {spec.image_size} px images; eqlens reads cards up to "
                              f"{MAX_CARD_IMAGE_SIZE} px")
    if build.get("image_size") is not None and build["image_size"] != spec.image_size:
        raise CheckpointError(f"{source}: input.image_size {spec.image_size} differs from the model's "
                              f"build_config.image_size {build['image_size']}")
    return {**record, **spec.to_record()}


def validate_card(card, source: str = "checkpoint") -> dict:
    """Return ``card`` if it is one of ours, else raise :class:`CheckpointError` saying why.

    The one place a card's types and ranges are checked (an uploaded card is untrusted): format,
    ``model.build_config`` (name, ``num_classes`` in [1, MAX_CLASSES], group, ``image_size`` in
    [1, MAX_CARD_IMAGE_SIZE]), ``class_names``, ``group``, ``task`` and ``input`` (through
    :class:`eqlens.data.transforms.InputSpec`; returned complete, so readers need no defaults), and the
    container types of ``training``, ``metrics``, ``history`` and ``data``."""
    if not isinstance(card, Mapping) or card.get("format") != FORMAT:
        raise CheckpointError(f"{source}: not an eqlens checkpoint (no '{FORMAT}' model card)")
    version = card.get("format_version")
    if not _is_int(version) or version < 1:
        raise CheckpointError(f"{source}: model card has no valid format_version")
    if version > FORMAT_VERSION:
        raise CheckpointError(f"{source}: format version {version} is newer than this eqlens reads "
                              f"({FORMAT_VERSION}); upgrade eqlens")
    build = card.get("model", {}).get("build_config") if isinstance(card.get("model"), Mapping) else None
    if not isinstance(build, Mapping) or not isinstance(build.get("name"), str):
        raise CheckpointError(f"{source}: model card lacks model.build_config")
    _validate_build(build, source)
    names = card.get("class_names")
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names) or not names:
        raise CheckpointError(f"{source}: model card lacks class_names")
    if len(names) > MAX_CLASSES or any(len(n) > 200 for n in names):
        raise CheckpointError(f"{source}: model card has more than {MAX_CLASSES} class names or one over 200 "
                              f"characters")
    if build.get("num_classes", len(names)) != len(names):
        raise CheckpointError(f"{source}: {len(names)} class names for a {build.get('num_classes')}-class model")
    if card.get("group") is not None:
        _check_group(card["group"], "group", source)
    for key, kind in (("training", Mapping), ("metrics", Mapping), ("data", Mapping), ("history", list)):
        if card.get(key) is not None and not isinstance(card[key], kind):
            raise CheckpointError(f"{source}: the card's {key} must be a {'list' if kind is list else 'mapping'}, "
                                  f"got {type(card[key]).__name__}")
    complete = (card.get("training") or {}).get("complete")
    if complete is not None and not isinstance(complete, bool):
        raise CheckpointError(f"{source}: training.complete must be true or false, got {_short(complete)}")
    task, scaler = card_task(card, source)
    if scaler is not None and len(names) != 1:
        raise CheckpointError(f"{source}: a {task} model has one output, the card names {len(names)}")
    return {**card, "input": _validate_input(card, build, source)}


# ---------------------------------------------------------------- weights

@contextmanager
def eval_mode(model: torch.nn.Module):
    """Put ``model`` in eval mode for the block, then restore its mode."""
    was_training = model.training
    model.eval()
    try:
        yield model
    finally:
        model.train(was_training)


def eval_state_dict(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The eval-mode state dict as independent, contiguous CPU tensors (safetensors refuses
    shared storage)."""
    with eval_mode(model):
        return {k: v.detach().to("cpu", copy=True).contiguous() for k, v in model.state_dict().items()}


def encode_weights(tensors: dict[str, torch.Tensor], card: dict) -> bytes:
    """safetensors bytes of ``tensors`` with ``card`` in the header metadata."""
    from safetensors.torch import save

    return save(tensors, metadata={CARD_METADATA_KEY: dumps(card, indent=None)})


def embedded_card(data: bytes, source: str = "checkpoint") -> dict | None:
    """The card stored in a safetensors header, None if there is none; raises
    :class:`CheckpointError` if ``data`` is not a well-formed safetensors header."""
    if len(data) < 8:
        raise CheckpointError(f"{source}: truncated (shorter than a safetensors header)")
    (header_len,) = struct.unpack("<Q", data[:8])
    if header_len > len(data) - 8 or header_len > 100_000_000:
        raise CheckpointError(f"{source}: truncated or corrupt (safetensors header runs past the end)")
    try:
        header = json.loads(data[8 : 8 + header_len])
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
        raise CheckpointError(f"{source}: corrupt (unreadable safetensors header)") from None
    if not isinstance(header, dict):
        raise CheckpointError(f"{source}: corrupt (safetensors header is not a table)")
    metadata = header.get("__metadata__") or {}
    text = metadata.get(CARD_METADATA_KEY) if isinstance(metadata, dict) else None
    if text is None:
        return None
    if not isinstance(text, str):
        raise CheckpointError(f"{source}: corrupt (the embedded model card is not text)")
    try:
        return json.loads(text)
    except (json.JSONDecodeError, RecursionError):
        raise CheckpointError(f"{source}: corrupt (unreadable embedded model card)") from None


def _is_pickle(data: bytes) -> bool:
    """A torch zip archive or a bare pickle stream. A safetensors file starts with an 8-byte header
    length (whose first byte may be anything) followed by ``{``."""
    if data[8:9] == b"{":
        return False
    return data[:2] == b"PK" or data[:1] == b"\x80"


def decode_weights(data: bytes, source: str) -> dict[str, torch.Tensor]:
    """Tensors of a safetensors blob, or of a pure-tensor torch ``.pt`` (loaded with
    ``weights_only=True``); anything needing arbitrary unpickling is refused."""
    if _is_pickle(data):
        try:
            obj = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
        except (pickle.UnpicklingError, RuntimeError, EOFError, ValueError, AttributeError) as err:
            # torch's own message advises weights_only=False, i.e. running the file's code: never repeat it
            raise CheckpointError(f"{source}: refusing a pickle file that is not plain tensors (it needs "
                                  f"{type(err).__name__} to unpickle objects, and eqlens never runs a file's "
                                  f"code); save a state dict of tensors or a .safetensors file") from None
        if not isinstance(obj, Mapping) or not all(torch.is_tensor(v) for v in obj.values()):
            raise CheckpointError(f"{source}: a torch file that is not a state dict of tensors")
        return dict(obj)
    from safetensors import SafetensorError
    from safetensors.torch import load

    embedded_card(data, source)  # header sanity first: gives the clearer message
    try:
        return load(data)
    except (SafetensorError, ValueError, RuntimeError) as err:
        raise CheckpointError(f"{source}: corrupt or truncated weights ({err})") from None


def load_weights_into(model: torch.nn.Module, tensors: dict[str, torch.Tensor], source: str) -> None:
    """Load ``tensors`` into ``model`` (in eval mode) after checking every key and shape."""
    model.eval()
    expected = model.state_dict()
    missing = sorted(set(expected) - set(tensors))
    unexpected = sorted(set(tensors) - set(expected))
    if missing or unexpected:
        raise CheckpointError(f"{source}: weights do not fit the model: missing {missing[:5]}"
                              f"{' ...' if len(missing) > 5 else ''}, unexpected {unexpected[:5]}"
                              f"{' ...' if len(unexpected) > 5 else ''}")
    for key, value in expected.items():
        if tuple(tensors[key].shape) != tuple(value.shape):
            raise CheckpointError(f"{source}: weight {key!r} has shape {tuple(tensors[key].shape)}, "
                                  f"the model needs {tuple(value.shape)}")
        given = tensors[key]
        kind_differs = given.is_floating_point() != value.is_floating_point() or given.is_complex()
        if kind_differs or (not value.is_floating_point() and given.dtype != value.dtype):
            raise CheckpointError(f"{source}: weight {key!r} is {str(given.dtype).removeprefix('torch.')}, "
                                  f"the model needs {str(value.dtype).removeprefix('torch.')}")
        if given.is_floating_point() and not torch.isfinite(given).all():
            raise CheckpointError(f"{source}: weight {key!r} holds NaN or inf")
    model.load_state_dict(tensors, strict=True)


def build_model(card: dict, source: str = "checkpoint"):
    """A fresh model from the card's ``build_config`` (weights not loaded), in eval mode."""
    from ..models import create_from_config

    try:
        model = create_from_config(card["model"]["build_config"])
    except (ValueError, TypeError) as err:
        raise CheckpointError(f"{source}: cannot rebuild the model ({err})") from None
    return model.eval()


# ---------------------------------------------------------------- writing

def first_non_finite(tensors: Mapping[str, torch.Tensor]) -> str | None:
    """The name of the first floating tensor holding NaN or inf, None if all are finite (one host sync
    when they are)."""
    floats = [(k, t) for k, t in tensors.items() if t.is_floating_point()]
    if not floats or bool(torch.stack([torch.isfinite(t).all() for _, t in floats]).all()):
        return None
    return next(k for k, t in floats if not bool(torch.isfinite(t).all()))


def write_checkpoint(directory, model, card: dict, state: dict | None = None) -> Path:
    """Write ``model.safetensors`` (card embedded), ``model_card.json`` and, if given, ``state.pt``.
    Raises :class:`CheckpointError` (writing nothing) for a card that does not validate or weights
    holding NaN or inf: such a checkpoint could never be loaded."""
    directory = Path(directory)
    card = validate_card(jsonable(card))
    tensors = eval_state_dict(model)
    bad = first_non_finite(tensors)
    if bad is not None:
        raise CheckpointError(f"{directory}: refusing to write weights holding NaN or inf ({bad!r})")
    directory.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(directory / WEIGHTS_FILE, encode_weights(tensors, card))
    atomic_write_bytes(directory / CARD_FILE, (dumps(card) + "\n").encode())
    if state is not None:
        buffer = io.BytesIO()
        torch.save(state, buffer)
        atomic_write_bytes(directory / STATE_FILE, buffer.getvalue())
    return directory


def write_last(out, model, card: dict, state: dict) -> Path:
    """Replace ``OUT/last`` as a whole: write ``last.new``, then swap it in (``last.old`` lives only
    between the two renames; :func:`find_last` recovers from a kill there)."""
    out = Path(out)
    final, new, old = out / LAST_DIR, out / f"{LAST_DIR}.new", out / f"{LAST_DIR}.old"
    if not final.exists() and old.exists():  # a previous run died between the renames: finish them
        os.replace(new if (new / STATE_FILE).exists() else old, final)
    shutil.rmtree(new, ignore_errors=True)
    write_checkpoint(new, model, card, state)  # state.pt is written last: its presence means complete
    if final.exists():
        shutil.rmtree(old, ignore_errors=True)
        os.replace(final, old)
    os.replace(new, final)
    shutil.rmtree(old, ignore_errors=True)
    return final


def find_last(out) -> Path | None:
    """The resumable ``last`` checkpoint of ``out``, or None if no epoch has finished."""
    out = Path(out)
    final, new, old = out / LAST_DIR, out / f"{LAST_DIR}.new", out / f"{LAST_DIR}.old"
    if (final / STATE_FILE).exists():
        return final
    if old.exists() and (new / STATE_FILE).exists():  # killed between the two renames
        return new
    return None


# ---------------------------------------------------------------- reading

def _read_source(source) -> tuple[bytes, dict | None, str]:
    """Bytes of the weights, the card from a side file if any, and a name for messages."""
    if isinstance(source, (bytes, bytearray, memoryview)):
        return bytes(source), None, "uploaded checkpoint"
    if hasattr(source, "read"):
        return source.read(), None, getattr(source, "name", "uploaded checkpoint")
    path = Path(source)
    if path.is_dir():
        path = path / WEIGHTS_FILE
    if not path.is_file():
        raise CheckpointError(f"checkpoint {str(source)!r} not found (expected a directory with {WEIGHTS_FILE} "
                              f"or a .safetensors file)")
    side = None
    if (path.parent / CARD_FILE).is_file():
        try:
            side = json.loads((path.parent / CARD_FILE).read_text())
        except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
            raise CheckpointError(f"{path.parent / CARD_FILE}: corrupt model card (not JSON)") from None
    return path.read_bytes(), side, str(path)


def read_checkpoint(source) -> tuple[dict[str, torch.Tensor], dict]:
    """``(tensors, card)`` of a checkpoint directory, file, bytes or file object, validated but not
    yet loaded into a model. The embedded card wins over a side ``model_card.json`` (it cannot
    drift from the weights)."""
    data, side_card, name = _read_source(source)
    if _is_pickle(data):
        tensors = decode_weights(data, name)  # refuses objects before anything else is said
        return tensors, validate_card(side_card, name)
    card = embedded_card(data, name)
    card = validate_card(card if card is not None else side_card, name)
    return decode_weights(data, name), card


def load_checkpoint(source, device="cpu"):
    """``(model, card)``: the model rebuilt from the card, weights loaded, on ``device``, in eval mode.

    Raises :class:`CheckpointError` for a missing, corrupt, truncated or foreign checkpoint, and
    for pickles that are not plain tensors."""
    tensors, card = read_checkpoint(source)
    name = str(source) if isinstance(source, (str, os.PathLike)) else "uploaded checkpoint"
    model = build_model(card, name)
    load_weights_into(model, tensors, name)
    return model.to(device).eval(), card


def load_state(directory) -> dict:
    """The resume state of a ``last`` directory, loaded with ``weights_only=True``."""
    path = Path(directory) / STATE_FILE
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise CheckpointError(f"{path}: no resume state") from None
    except (pickle.UnpicklingError, RuntimeError, EOFError, ValueError, AttributeError) as err:
        raise CheckpointError(f"{path}: unreadable resume state ({str(err).splitlines()[0]})") from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not an eqlens resume state")
    return state


# ---------------------------------------------------------------- RNG states as tensors

def capture_rng_state() -> dict:
    """torch (CPU and every CUDA device), numpy and Python RNG states, as tensors and numbers."""
    import random

    np_name, np_keys, np_pos, np_has_gauss, np_cached = np.random.get_state()
    py_version, py_internal, py_gauss = random.getstate()
    return {
        "torch": torch.get_rng_state(),
        "cuda": list(torch.cuda.get_rng_state_all()) if torch.cuda.is_available() else [],
        "numpy": {"name": np_name, "keys": torch.from_numpy(np_keys.astype(np.int64)), "pos": int(np_pos),
                  "has_gauss": int(np_has_gauss), "cached_gaussian": float(np_cached)},
        "python": {"version": int(py_version), "internal": torch.tensor(py_internal, dtype=torch.int64),
                   "gauss_next": py_gauss},
    }


def restore_rng_state(state: dict) -> None:
    import random

    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available() and len(state["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(state["cuda"])
    n = state["numpy"]
    np.random.set_state((n["name"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"],
                         n["cached_gaussian"]))
    p = state["python"]
    random.setstate((p["version"], tuple(int(v) for v in p["internal"].tolist()), p["gauss_next"]))
