"""Checkpoint files: weights in safetensors, the JSON model card beside them, and a resume state.

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

The weights and their side card are one record: the weights are written first, and every reader (the
side-card reader :func:`read_card` included) takes the card embedded in the weights when the side card
differs from it, so a kill between the two writes never shows a card of other weights. A write that fails
(a full disk) raises :class:`CheckpointError` saying so, and leaves every file already there whole; the
temporary files a kill leaves behind are removed on resume (:func:`remove_stale_temporaries`).
"""

from __future__ import annotations

import errno
import io
import json
import os
import pickle
import shutil
import struct
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import torch

from ..core.jsonio import atomic_write_bytes, dumps, jsonable
from ..errors import CheckpointError
from .card import FORMAT, ModelCard

WEIGHTS_FILE = "model.safetensors"
CARD_FILE = "model_card.json"
STATE_FILE = "state.pt"
LAST_DIR = "last"
CARD_METADATA_KEY = "eqlens_card"


# ---------------------------------------------------------------- weights

def eval_state_dict(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The eval-mode state dict as independent, contiguous CPU tensors (safetensors refuses
    shared storage)."""
    from ..models.inspection import eval_mode

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
    except (ValueError, RecursionError):  # JSONDecodeError, UnicodeDecodeError, an integer of over 4300 digits
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
    except (ValueError, RecursionError) as err:
        raise CheckpointError(f"{source}: corrupt (unreadable embedded model card: {_reason(err)})") from None


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


def build_model(card: ModelCard, source: str = "checkpoint"):
    """A fresh model from the card's ``build_config`` (weights not loaded), in eval mode."""
    from ..models import create_from_config

    try:
        model = create_from_config(card.build_config)
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


def write_checkpoint(directory, model, card: ModelCard | dict, state: dict | None = None) -> Path:
    """Write ``model.safetensors`` (card embedded), ``model_card.json`` and, if given, ``state.pt``.
    ``card``: a :class:`ModelCard` or its JSON (:func:`eqlens.checkpoint.card.make_card`). Raises
    :class:`CheckpointError` (writing nothing) for a card that does not validate or weights holding
    NaN or inf: such a checkpoint could never be loaded."""
    directory = Path(directory)
    card = ModelCard.from_json(card if isinstance(card, ModelCard) else jsonable(card)).to_json()
    tensors = eval_state_dict(model)
    bad = first_non_finite(tensors)
    if bad is not None:
        raise CheckpointError(f"{directory}: refusing to write weights holding NaN or inf ({bad!r})")
    try:
        directory.mkdir(parents=True, exist_ok=True)
        # weights (their card embedded) first: until the side card follows, readers take the embedded one
        atomic_write_bytes(directory / WEIGHTS_FILE, encode_weights(tensors, card))
        atomic_write_bytes(directory / CARD_FILE, (dumps(card) + "\n").encode())
        if state is not None:
            buffer = io.BytesIO()
            torch.save(state, buffer)
            atomic_write_bytes(directory / STATE_FILE, buffer.getvalue())
    except OSError as err:
        raise CheckpointError(_write_failure(directory, err)) from None
    return directory


def _write_failure(directory: Path, err: OSError) -> str:
    reason = "the disk is full" if err.errno == errno.ENOSPC else (err.strerror or type(err).__name__)
    return (f"{directory}: cannot write the checkpoint ({reason}); every file already there is kept whole "
            f"(each is replaced only once its successor is written completely): free space and resume")


def remove_stale_temporaries(out) -> list[Path]:
    """Remove the temporary files a killed write left in ``out`` and its ``last`` folders (``.<file>.<pid>.<id>.tmp``
    of the checkpoint's own files; nothing else is touched); returns what was removed. A resumed run calls it."""
    out, removed = Path(out), []
    for folder in (out, out / LAST_DIR, out / f"{LAST_DIR}.new", out / f"{LAST_DIR}.old"):
        for name in (WEIGHTS_FILE, CARD_FILE, STATE_FILE):
            for stale in folder.glob(f".{name}.*.tmp"):
                if stale.is_file() and not stale.is_symlink():
                    stale.unlink(missing_ok=True)
                    removed.append(stale)
    return removed


def write_last(out, model, card: ModelCard | dict, state: dict) -> Path:
    """Replace ``OUT/last`` as a whole: write ``last.new``, then swap it in (``last.old`` lives only
    between the two renames; :func:`find_last` recovers from a kill there)."""
    out = Path(out)
    final, new, old = out / LAST_DIR, out / f"{LAST_DIR}.new", out / f"{LAST_DIR}.old"
    if not final.exists() and old.exists():  # a previous run died between the renames: finish them
        os.replace(new if (new / STATE_FILE).exists() else old, final)
    shutil.rmtree(new, ignore_errors=True)
    try:
        write_checkpoint(new, model, card, state)  # state.pt is written last: its presence means complete
    except CheckpointError:
        shutil.rmtree(new, ignore_errors=True)  # last/ keeps the previous epoch, whole
        raise
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

def read_card(path) -> ModelCard:
    """The card of a checkpoint without reading its tensors: ``path`` is a checkpoint folder (its
    ``model_card.json``) or the card file itself. Where ``model.safetensors`` lies beside a valid side card and
    the card embedded in its header differs from it (a write killed between the two files), the embedded card
    is the one returned: it cannot drift from the weights. :class:`CheckpointError` when the side card is
    missing, not JSON or not a valid card."""
    path = Path(path)
    if path.is_dir():
        path = path / CARD_FILE
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as err:
        raise CheckpointError(f"{path}: no readable model card ({type(err).__name__})") from None
    side = _parse_card(text, path)
    card = ModelCard.from_json(side, str(path))  # a side card that is no valid card is refused as it is
    embedded = _header_card(path.parent / WEIGHTS_FILE)
    return ModelCard.from_json(embedded, str(path)) if embedded is not None and embedded != side else card


def _header_card(weights: Path) -> dict | None:
    """The card embedded in ``weights``' safetensors header, reading the header only; None when the file is
    absent, not safetensors, or carries no card (the side card then stands alone)."""
    try:
        with open(weights, "rb") as f:
            head = f.read(8)
            if len(head) < 8 or weights.stat().st_size < 9:
                return None
            (header_len,) = struct.unpack("<Q", head)
            if header_len > 100_000_000:
                return None
            data = head + f.read(header_len)
    except OSError:
        return None
    if _is_pickle(data):
        return None
    try:
        return embedded_card(data, str(weights))
    except CheckpointError:
        return None


def _reason(err: Exception) -> str:
    """The first line of a JSON parser's complaint, short (a RecursionError says nesting)."""
    if isinstance(err, RecursionError):
        return "nested too deeply"
    return str(err).splitlines()[0][:120] if str(err) else type(err).__name__


def _parse_card(text: str, path) -> object:
    """JSON of a side card; :class:`CheckpointError` with the parser's reason when it is not JSON Python can
    read (malformed, nested too deeply, an integer of over 4300 digits)."""
    try:
        return json.loads(text)
    except (ValueError, RecursionError) as err:
        raise CheckpointError(f"{path}: corrupt model card (not JSON: {_reason(err)})") from None


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
            text = (path.parent / CARD_FILE).read_text()
        except (OSError, UnicodeDecodeError) as err:
            raise CheckpointError(f"{path.parent / CARD_FILE}: unreadable model card ({type(err).__name__})") from None
        side = _parse_card(text, path.parent / CARD_FILE)
    return path.read_bytes(), side, str(path)


def read_checkpoint(source) -> tuple[dict[str, torch.Tensor], ModelCard]:
    """``(tensors, card)`` of a checkpoint directory, file, bytes or file object, validated but not
    yet loaded into a model. The embedded card wins over a side ``model_card.json`` (it cannot
    drift from the weights)."""
    data, side_card, name = _read_source(source)
    if _is_pickle(data):
        tensors = decode_weights(data, name)  # refuses objects before anything else is said
        return tensors, ModelCard.from_json(side_card, name)
    card = embedded_card(data, name)
    card = ModelCard.from_json(card if card is not None else side_card, name)
    return decode_weights(data, name), card


def load_checkpoint(source, device="cpu") -> tuple[torch.nn.Module, ModelCard]:
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
