"""Decode one lensing image file (or uploaded bytes) into a float64 ``[H, W]`` array, refusing anything unsafe.

Formats are recognised by their first bytes, not by the file name (the name only labels errors):

- ``.npy``: ``(H, W)`` counts or floats; ``(1, H, W)`` (any unit axes are squeezed); the DeepLense axion
  pair, a 1-D object array ``[image, axion_mass]``; a flat ``(n*n,)`` image; a flat ``(n*n + 1,)`` image
  with its integer label appended (``n*n + 1`` is never a square, so the two flat forms cannot be confused).
- PNG / JPEG / TIFF (8 and 16 bit, float TIFF); colour is reduced to BT.601 luminance
  ``0.299 R + 0.587 G + 0.114 B`` in float (no rounding to 8 bit); alpha is dropped.
- FITS: the first image HDU holding data; a cube with a single plane is squeezed.

No untrusted byte reaches pickle, ``np.load`` or numpy's ``ndarray.__setstate__``. A numeric ``.npy`` is
rebuilt from its header with ``np.frombuffer`` once the payload is exactly ``prod(shape) * itemsize`` bytes
(a header claiming more pixels than the file holds allocates nothing). The pickle of an object ``.npy`` (the
axion pair, and only when its header says a 1-D object array of length 2) is read by a small interpreter of
its opcodes (:func:`_read_pickled_pair`): it knows numpy's array, dtype and scalar recipes by name and nothing
else, calls none of them, and builds each array itself after checking its shape, dtype and payload length;
an object array must carry exactly ``prod(shape)`` items. Any other global (``os.system``,
``builtins.eval``, ...) or opcode raises :class:`DataError`.

FITS: every header is read before any data (:func:`_fits_image_plan`); an image (or a tile-compressed image,
``ZNAXISn``) over ``MAX_SIDE`` or over ``MAX_SIDE**2`` pixels, or data running past the end of the file,
is refused before astropy decodes anything, so a small compressed file cannot expand into gigabytes.

Nothing is normalised here: the one normalisation lives in :mod:`eqlens.data.transforms`.
"""

from __future__ import annotations

import io
import math
import os
import pickletools
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np

from ..errors import DataError

MAX_FILE_BYTES = 64 * 2**20
# Labels index classes: an appended label is refused from MAX_CLASSES on (a card holds at most that many
# class names, eqlens.checkpoint.card), so no label makes a reader build a list of its size.
MAX_CLASSES = 1000
MIN_SIDE = 16
MAX_SIDE = 4096
NPY_SUFFIXES = (".npy",)
PICTURE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff")
FITS_SUFFIXES = (".fits", ".fit", ".fts")
SUPPORTED_SUFFIXES = NPY_SUFFIXES + PICTURE_SUFFIXES + FITS_SUFFIXES
LUMINANCE_WEIGHTS = (0.299, 0.587, 0.114)

ImageSource = str | os.PathLike | bytes | bytearray | memoryview | BinaryIO

# The only globals a pickled axion pair may name, each to a role of the interpreter (never called).
# numpy 1.x writes "numpy.core", 2.x "numpy._core"; protocol-2 pickles carry bytes as _codecs.encode(str).
_PICKLE_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"): "reconstruct",
    ("numpy._core.multiarray", "_reconstruct"): "reconstruct",
    ("numpy.core.multiarray", "scalar"): "scalar",
    ("numpy._core.multiarray", "scalar"): "scalar",
    ("numpy", "ndarray"): "ndarray",
    ("numpy", "dtype"): "dtype",
    ("_codecs", "encode"): "encode",
}
_PICKLE_MAX_OPS = 2000  # an axion pair takes about 70 opcodes
_NUMERIC_DESCRS = frozenset(f"{kind}{size}" for kind in "iu" for size in (1, 2, 4, 8)) | {"f2", "f4", "f8"}
_OBJECT_DESCRS = frozenset({"O4", "O8"})
MAX_FITS_HDUS = 64


@dataclass(frozen=True)
class DecodedImage:
    """One decoded file.

    ``image``: float64 ``[H, W]``, finite, sides in ``[MIN_SIDE, MAX_SIDE]``. ``layout``: one of
    ``npy_image``, ``npy_channel``, ``npy_axion_pair``, ``npy_flat``, ``npy_flat_labeled``, ``png``,
    ``jpeg``, ``tiff``, ``fits``. ``axion_mass``: the second item of an axion pair. ``label``: the value
    appended to a flat labelled array."""

    image: np.ndarray
    name: str
    layout: str
    axion_mass: float | None = None
    label: int | None = None


def load_image(source: ImageSource, filename: str | None = None, *, max_bytes: int = MAX_FILE_BYTES) -> np.ndarray:
    """A path, bytes or a binary file object (e.g. a Streamlit upload, read from its start) -> float64 ``[H, W]``.

    ``filename`` names bytes in error messages. Raises :class:`DataError` naming the file for anything
    that is not one finite 2-D image of a supported format within ``max_bytes``."""
    return decode_image(source, filename, max_bytes=max_bytes).image


def decode_image(source: ImageSource, filename: str | None = None, *, max_bytes: int = MAX_FILE_BYTES) -> DecodedImage:
    """Like :func:`load_image`, also reporting the layout, the axion mass and an appended label.

    Every failure is a :class:`DataError` naming the file: a decoder's own ``OverflowError`` or ``ValueError``
    (a number too large for a float, a malformed field) included."""
    data, name = _read_source(source, filename, max_bytes)
    try:
        return _decode(data, name)
    except DataError:
        raise
    except (OverflowError, ValueError, TypeError, IndexError, KeyError) as err:
        raise DataError(f"{name}: cannot decode ({type(err).__name__}: {_short(err)})") from None


def _decode(data: bytes, name: str) -> DecodedImage:
    if data.startswith(b"\x93NUMPY"):
        return _decode_npy(data, name)
    if data.startswith(b"SIMPLE  ="):
        return _decode_fits(data, name)
    picture_format = _sniff_picture(data)
    if picture_format is not None:
        return _decode_picture(data, name, picture_format)
    raise DataError(f"{name}: not a supported image; expected .npy, PNG, JPEG, TIFF or FITS content")


def _read_source(source: ImageSource, filename: str | None, max_bytes: int) -> tuple[bytes, str]:
    if isinstance(source, (bytes, bytearray, memoryview)):
        name = filename or "<uploaded bytes>"
        data = bytes(source)
    elif isinstance(source, (str, os.PathLike)):
        path = Path(source)
        name = filename or str(path)
        if not path.is_file():
            raise DataError(f"{name}: no such file")
        size = path.stat().st_size
        if size > max_bytes:
            raise DataError(f"{name}: {size} bytes is over the {max_bytes}-byte limit")
        data = path.read_bytes()
    elif hasattr(source, "read"):
        name = filename or str(getattr(source, "name", "<uploaded file>"))
        if getattr(source, "seekable", lambda: False)():
            source.seek(0)  # an upload read once before (e.g. on a Streamlit rerun) is still the whole file
        data = source.read(max_bytes + 1)
        if not isinstance(data, bytes):
            raise DataError(f"{name}: the file object must be opened in binary mode")
    else:
        raise DataError(f"{filename or source!r}: expected a path, bytes or a binary file object")
    if len(data) > max_bytes:
        raise DataError(f"{name}: over the {max_bytes}-byte limit")
    if not data:
        raise DataError(f"{name}: the file is empty")
    return data, name


# ----------------------------------------------------------------------------------------------- .npy


def _decode_npy(data: bytes, name: str) -> DecodedImage:
    stream = io.BytesIO(data)
    shape, fortran_order, dtype = _read_npy_header(stream, name)
    payload = data[stream.tell() :]
    if dtype.hasobject:
        image, mass = _read_axion_pair(payload, shape, name)
        return DecodedImage(_checked(_squeezed(image, name), name), name, "npy_axion_pair", axion_mass=mass)
    if dtype.kind not in "iuf" or dtype.shape != () or dtype.itemsize == 0:
        raise DataError(f"{name}: dtype {dtype} is not a real-valued image")
    array = _array_from_payload(payload, shape, dtype, fortran_order, name)
    if array.ndim == 1:
        return _decode_flat(array, name)
    layout = "npy_image" if array.ndim == 2 else "npy_channel"
    return DecodedImage(_checked(_squeezed(array, name), name), name, layout)


def _read_npy_header(stream: BinaryIO, name: str) -> tuple[tuple[int, ...], bool, np.dtype]:
    try:
        version = np.lib.format.read_magic(stream)
        if version == (1, 0):
            shape, fortran_order, dtype = np.lib.format.read_array_header_1_0(stream)
        elif version == (2, 0):
            shape, fortran_order, dtype = np.lib.format.read_array_header_2_0(stream)
        else:
            raise DataError(f"{name}: .npy format version {version} is not supported (1.0 and 2.0 are)")
    except DataError:
        raise
    except Exception as err:  # numpy's header parser raises ValueError, SyntaxError, tokenize.TokenError, ...
        raise DataError(f"{name}: corrupt .npy header ({type(err).__name__}: {_short(err)})") from err
    _check_shape(shape, name)
    return shape, bool(fortran_order), dtype


def _check_shape(shape, name: str) -> tuple[int, ...]:
    if type(shape) is not tuple or not all(type(n) is int and 0 <= n < 2**63 for n in shape) or len(shape) > 32:
        raise DataError(f"{name}: the array shape is not a tuple of non-negative integers")
    return shape


def _array_from_payload(payload, shape: tuple[int, ...], dtype: np.dtype, fortran_order: bool, name: str):
    """``shape`` x ``dtype`` read from ``payload``, which must hold exactly that many bytes (a view, no copy)."""
    if math.prod(shape) == 0:  # also keeps numpy from sizing e.g. (0, 2**30, 2**30), which it cannot
        raise DataError(f"{name}: an array of shape {shape} holds no pixels")
    needed = math.prod(shape) * dtype.itemsize
    if len(payload) != needed:
        raise DataError(
            f"{name}: an array of shape {shape} and dtype {dtype} needs exactly {needed} bytes of data, "
            f"the file holds {len(payload)}"
        )
    return np.frombuffer(payload, dtype=dtype).reshape(shape, order="F" if fortran_order else "C")


def _read_axion_pair(payload: bytes, shape: tuple[int, ...], name: str) -> tuple[np.ndarray, float]:
    if shape != (2,):
        raise DataError(
            f"{name}: an object array of shape {shape} is not the [image, axion_mass] pair; refusing to unpickle"
        )
    pair = _read_pickled_pair(payload, name)
    if not (isinstance(pair, _ArrayRecipe) and pair.items is not None and pair.shape == (2,)):
        raise DataError(f"{name}: the pickle does not hold a 1-D object array of length 2")
    image, mass = pair.items
    if not (isinstance(image, _ArrayRecipe) and image.array is not None and image.array.dtype.kind in "iuf"):
        raise DataError(f"{name}: the first item of the pair is not a numeric image array")
    value = _finite_float(mass) if type(mass) in (int, float) else None
    if value is None:
        raise DataError(f"{name}: the second item of the pair is not a finite number (got {_shown(mass)})")
    return image.array, value


def _finite_float(number: int | float) -> float | None:
    """``number`` as a finite float, None when it is not one (an integer too large for a float: 2**5000)."""
    try:
        value = float(number)
    except OverflowError:
        return None
    return value if math.isfinite(value) else None


def _shown(value) -> str:
    """A pickled item for messages: a short repr of plain values, else its type (an integer too long to print:
    its size in bits)."""
    if type(value) is int and value.bit_length() > 128:
        return f"an integer of {value.bit_length()} bits"
    if type(value) in (str, bool, float, int) and len(repr(value)) < 40:
        return repr(value)
    return type(value).__name__


# ------------------------------------------------------------------------------------ the pickle reader


class _Global:
    """A global the interpreter knows by its role; it is never called."""

    __slots__ = ("role",)

    def __init__(self, role: str):
        self.role = role


class _DtypeRecipe:
    """``numpy.dtype(descr, ...)``: completed by one BUILD with its byte order."""

    __slots__ = ("descr", "dtype")

    def __init__(self, descr: str):
        self.descr = descr
        self.dtype: np.dtype | None = None

    def build(self, state, name: str) -> None:
        if type(state) is not tuple or len(state) not in (8, 9) or state[0] not in (3, 4):
            raise DataError(f"{name}: unsupported pickled dtype state")
        endian = state[1]
        if endian not in ("<", ">", "|", "=") or any(item is not None for item in state[2:5]):
            raise DataError(f"{name}: only plain numeric or object dtypes are accepted in the pickle")
        if len(state) == 9 and state[8] is not None:
            raise DataError(f"{name}: a pickled dtype with metadata is not accepted")
        dtype = np.dtype(self.descr)
        self.dtype = dtype.newbyteorder(endian) if endian in "<>" and dtype.itemsize > 1 else dtype


class _ArrayRecipe:
    """``_reconstruct(ndarray, (0,), b'b')``: completed by one BUILD that carries shape, dtype and data.
    A numeric array becomes ``array``; an object array keeps its ``items`` (exactly ``prod(shape)``)."""

    __slots__ = ("array", "built", "items", "shape")

    def __init__(self):
        self.built = False
        self.array: np.ndarray | None = None
        self.items: list | None = None
        self.shape: tuple[int, ...] | None = None

    def build(self, state, name: str) -> None:
        if type(state) is tuple and len(state) == 5:
            if state[0] != 1 or type(state[0]) is not int:
                raise DataError(f"{name}: unsupported pickled array state version")
            state = state[1:]
        if type(state) is not tuple or len(state) != 4:
            raise DataError(f"{name}: unsupported pickled array state")
        shape, recipe, fortran_order, data = state
        shape = _check_shape(shape, name)
        if not isinstance(recipe, _DtypeRecipe) or recipe.dtype is None or type(fortran_order) is not bool:
            raise DataError(f"{name}: the pickled array has no valid dtype")
        self.built, self.shape = True, shape
        if recipe.dtype.hasobject:
            if type(data) is not list or len(data) != math.prod(shape):
                count = len(data) if type(data) is list else type(data).__name__
                raise DataError(
                    f"{name}: a pickled object array of shape {shape} must carry exactly {math.prod(shape)} "
                    f"items (got {count}); refusing it"
                )
            self.items = data
        else:
            if type(data) is not bytes:
                raise DataError(f"{name}: the pickled array's data is not a byte string")
            self.array = _array_from_payload(data, shape, recipe.dtype, fortran_order, name)


_MARK = object()


def _read_pickled_pair(payload: bytes, name: str):
    """Interpret the pickle of an object ``.npy`` without ``pickle``: the known numpy recipes only."""
    try:
        return _interpret_pickle(payload, name)
    except DataError:
        raise
    except Exception as err:  # pickletools raises ValueError for truncated or unknown opcodes; be broad
        raise DataError(f"{name}: corrupt pickled [image, mass] pair ({type(err).__name__}: {_short(err)})") from None


def _interpret_pickle(payload: bytes, name: str):
    stack: list = []
    memo: dict[int, object] = {}

    def pop_mark() -> list:
        for i in range(len(stack) - 1, -1, -1):
            if stack[i] is _MARK:
                items = stack[i + 1 :]
                del stack[i:]
                return items
        raise DataError(f"{name}: corrupt pickle (no mark)")

    def pop():
        if not stack or stack[-1] is _MARK:
            raise DataError(f"{name}: corrupt pickle (stack underflow)")
        return stack.pop()

    def refuse_global(module, attr):
        raise DataError(
            f"{name}: refusing to unpickle {str(module)[:80]}.{str(attr)[:80]}; only the DeepLense "
            "[image, mass] numpy pair is accepted"
        )

    for count, (opcode, arg, _pos) in enumerate(pickletools.genops(io.BytesIO(payload))):
        if count > _PICKLE_MAX_OPS:
            raise DataError(f"{name}: the pickle has over {_PICKLE_MAX_OPS} opcodes; not an [image, mass] pair")
        op = opcode.name
        if op in ("PROTO", "FRAME"):
            continue
        if op == "STOP":
            result = pop()
            return result
        if op == "MARK":
            stack.append(_MARK)
        elif op in ("GLOBAL", "STACK_GLOBAL"):
            if op == "GLOBAL":
                module, _, attr = str(arg).partition(" ")
            else:
                attr, module = pop(), pop()
                if type(module) is not str or type(attr) is not str:
                    raise DataError(f"{name}: corrupt pickle (a global named by non-strings)")
            role = _PICKLE_GLOBALS.get((module, attr))
            if role is None:
                refuse_global(module, attr)
            stack.append(_Global(role))
        elif op in ("BINPUT", "LONG_BINPUT", "PUT"):
            if not stack or stack[-1] is _MARK:
                raise DataError(f"{name}: corrupt pickle (memo of nothing)")
            memo[int(arg)] = stack[-1]
        elif op == "MEMOIZE":
            if not stack or stack[-1] is _MARK:
                raise DataError(f"{name}: corrupt pickle (memo of nothing)")
            memo[len(memo)] = stack[-1]
        elif op in ("BINGET", "LONG_BINGET", "GET"):
            if int(arg) not in memo:
                raise DataError(f"{name}: corrupt pickle (memo key {int(arg)} unset)")
            stack.append(memo[int(arg)])
        elif op in ("NONE", "NEWTRUE", "NEWFALSE", "INT", "BININT", "BININT1", "BININT2", "LONG", "LONG1",
                    "LONG4", "BINFLOAT", "FLOAT"):
            stack.append({"NONE": None, "NEWTRUE": True, "NEWFALSE": False}.get(op, arg))
        elif op in ("BINUNICODE", "SHORT_BINUNICODE", "BINUNICODE8", "UNICODE"):
            stack.append(str(arg))
        elif op in ("SHORT_BINBYTES", "BINBYTES", "BINBYTES8"):
            stack.append(bytes(arg))
        elif op in ("BINSTRING", "SHORT_BINSTRING", "STRING"):  # Python 2 str: bytes, as numpy loads them
            stack.append(arg.encode("latin-1") if isinstance(arg, str) else bytes(arg))
        elif op == "EMPTY_TUPLE":
            stack.append(())
        elif op in ("TUPLE1", "TUPLE2", "TUPLE3"):
            n = int(op[-1])
            items = [pop() for _ in range(n)][::-1]
            stack.append(tuple(items))
        elif op == "TUPLE":
            stack.append(tuple(pop_mark()))
        elif op == "EMPTY_LIST":
            stack.append([])
        elif op == "LIST":
            stack.append(pop_mark())
        elif op in ("APPEND", "APPENDS"):
            items = [pop()] if op == "APPEND" else pop_mark()
            target = pop()
            if type(target) is not list:
                raise DataError(f"{name}: corrupt pickle (append to a non-list)")
            if len(target) + len(items) > 16:
                raise DataError(f"{name}: a pickled list of over 16 items is not an [image, mass] pair")
            target.extend(items)
            stack.append(target)
        elif op == "REDUCE":
            args = pop()
            stack.append(_reduce(pop(), args, name))
        elif op == "BUILD":
            state = pop()
            target = stack[-1] if stack else None
            if isinstance(target, (_DtypeRecipe, _ArrayRecipe)) and not _is_built(target):
                target.build(state, name)
            else:
                raise DataError(f"{name}: the pickle sets the state of something other than a new array or dtype")
        else:
            raise DataError(f"{name}: the pickle uses opcode {op}, which an [image, mass] pair never needs")
    raise DataError(f"{name}: corrupt pickle (no STOP)")


def _is_built(recipe) -> bool:
    return recipe.dtype is not None if isinstance(recipe, _DtypeRecipe) else recipe.built


def _reduce(func, args, name: str):
    """What calling a known global would give, computed here (nothing is called)."""
    if not isinstance(func, _Global) or type(args) is not tuple:
        raise DataError(f"{name}: the pickle calls something that is not a known numpy recipe")
    if func.role == "reconstruct":
        if len(args) != 3 or not isinstance(args[0], _Global) or args[0].role != "ndarray":
            raise DataError(f"{name}: _reconstruct of something other than numpy.ndarray")
        return _ArrayRecipe()
    if func.role == "dtype":
        descr = args[0] if args else None
        if type(descr) is not str or descr not in _NUMERIC_DESCRS | _OBJECT_DESCRS:
            shown = descr if type(descr) is str and len(descr) < 20 else type(descr).__name__
            raise DataError(f"{name}: the pickled dtype {shown!r} is not a plain numeric or object dtype")
        return _DtypeRecipe(descr)
    if func.role == "scalar":
        if len(args) != 2 or not isinstance(args[0], _DtypeRecipe) or args[0].dtype is None:
            raise DataError(f"{name}: a pickled numpy scalar without a dtype")
        dtype, raw = args[0].dtype, args[1]
        if dtype.hasobject or type(raw) is not bytes or len(raw) != dtype.itemsize:
            raise DataError(f"{name}: a pickled numpy scalar that is not {dtype.itemsize} bytes of a number")
        return np.frombuffer(raw, dtype=dtype)[0].item()
    if func.role == "encode":
        if len(args) != 2 or type(args[0]) is not str or args[1] not in ("latin1", "latin-1"):
            raise DataError(f"{name}: an unexpected _codecs.encode call in the pickle")
        return args[0].encode("latin-1")
    raise DataError(f"{name}: the pickle calls numpy.{func.role} directly")


def _short(err: BaseException, limit: int = 200) -> str:
    text = str(err).splitlines()[0] if str(err) else ""
    return text[:limit]


def _decode_flat(array: np.ndarray, name: str) -> DecodedImage:
    """``(n*n,)`` -> row-major ``n x n``; ``(n*n + 1,)`` -> the same plus the appended integer label."""
    length = array.shape[0]
    side = math.isqrt(length)
    if side * side == length:
        return DecodedImage(_checked(array.reshape(side, side), name), name, "npy_flat")
    side = math.isqrt(length - 1) if length > 0 else 0
    if side * side != length - 1:
        raise DataError(
            f"{name}: a 1-D array of length {length} is neither a flat n*n image nor n*n pixels plus a label"
        )
    label = float(array[-1])
    if not (math.isfinite(label) and label >= 0 and label == int(label)):
        raise DataError(f"{name}: the appended label {label!r} is not a non-negative integer")
    if label >= MAX_CLASSES:
        raise DataError(f"{name}: the appended label {label:g} is not a class index: eqlens takes at most "
                        f"{MAX_CLASSES} classes (labels 0 to {MAX_CLASSES - 1})")
    image = _checked(array[:-1].reshape(side, side), name)
    return DecodedImage(image, name, "npy_flat_labeled", label=int(label))


# ----------------------------------------------------------------------------------------------- FITS


def _decode_fits(data: bytes, name: str) -> DecodedImage:
    index, expected_shape = _fits_image_plan(data, name)  # refuses bombs before astropy reads a byte of data
    from astropy.io import fits  # a few hundred ms to import; only FITS users pay it

    try:
        with fits.open(io.BytesIO(data), memmap=False, lazy_load_hdus=True) as hdus:
            hdu = hdus[index]
            if not hdu.is_image or tuple(hdu.shape) != expected_shape:
                raise DataError(f"{name}: HDU {index} is not the {expected_shape[::-1]} image its header announces")
            array = np.array(hdu.data, dtype=np.float64)
    except DataError:
        raise
    except Exception as err:  # astropy raises OSError, ValueError, VerifyError, ... for broken files
        raise DataError(f"{name}: unreadable FITS file ({type(err).__name__}: {_short(err)})") from err
    return DecodedImage(_checked(_squeezed(array, name), name), name, "fits")


_FITS_BLOCK = 2880
_FITS_BITPIX = (8, 16, 32, 64, -32, -64)


def _fits_image_plan(data: bytes, name: str) -> tuple[int, tuple[int, ...]]:
    """Read every header (not the data) and return the index of the first HDU holding image data and
    its numpy shape (slowest axis first). Refuses, before any decoding: an image or tile-compressed
    image (``ZNAXISn``) with a side over ``MAX_SIDE``, over ``MAX_SIDE**2`` pixels or more than two
    axes over 1; data that runs past the end of the file; more than ``MAX_FITS_HDUS`` HDUs."""
    position, index = 0, 0
    while position < len(data):
        if index >= MAX_FITS_HDUS:
            raise DataError(f"{name}: over {MAX_FITS_HDUS} HDUs before an image with data")
        cards, position = _fits_header(data, position, name, index)
        data_bytes = _fits_data_bytes(cards, name, index)
        if position + data_bytes > len(data):
            raise DataError(f"{name}: HDU {index} announces {data_bytes} bytes of data; the file ends before that")
        axes = _fits_image_axes(cards, name, index)
        if axes is not None and axes and math.prod(axes) > 0:
            _check_fits_axes(axes, name, index)
            return index, tuple(reversed(axes))
        position += -(-data_bytes // _FITS_BLOCK) * _FITS_BLOCK
        index += 1
    raise DataError(f"{name}: the FITS file has no image HDU with data")


def _fits_header(data: bytes, position: int, name: str, index: int) -> tuple[dict[str, object], int]:
    """The cards of the header starting at ``position`` (keyword -> int, bool, str or None) and the
    offset of its data."""
    cards: dict[str, object] = {}
    while True:
        card = data[position : position + 80]
        if len(card) < 80:
            raise DataError(f"{name}: HDU {index}: the header has no END card before the end of the file")
        position += 80
        keyword = card[:8].decode("ascii", "replace").strip()
        if keyword == "END":
            return cards, -(-position // _FITS_BLOCK) * _FITS_BLOCK
        if card[8:10] == b"= " and keyword not in cards:
            cards[keyword] = _fits_value(card[10:].decode("ascii", "replace"))


def _fits_value(text: str):
    text = text.strip()
    if text.startswith("'"):
        end = text.find("'", 1)
        return text[1:end].rstrip() if end > 0 else None
    text = text.split("/", 1)[0].strip()
    if text in ("T", "F"):
        return text == "T"
    try:
        return int(text)
    except ValueError:
        return None


def _fits_int(cards: dict, key: str, name: str, index: int, default: int | None = None, low: int = 0,
              high: int = 2**62) -> int:
    value = cards.get(key, default)
    if type(value) is not int or not low <= value <= high:
        raise DataError(f"{name}: HDU {index}: header keyword {key} is missing or not an integer in [{low}, {high}]")
    return value


def _fits_data_bytes(cards: dict, name: str, index: int) -> int:
    """The data size the header announces: |BITPIX|/8 * GCOUNT * (PCOUNT + NAXIS1 * ... * NAXISn)."""
    bitpix = cards.get("BITPIX")
    if bitpix not in _FITS_BITPIX or type(bitpix) is not int:
        raise DataError(f"{name}: HDU {index}: BITPIX {bitpix!r} is not one of {_FITS_BITPIX}")
    naxis = _fits_int(cards, "NAXIS", name, index, high=999)
    _fits_int(cards, "TFIELDS", name, index, default=0, high=999)  # astropy loops over it (1e12: a hang)
    if naxis == 0:
        return 0
    axes = [_fits_int(cards, f"NAXIS{i}", name, index) for i in range(1, naxis + 1)]
    if cards.get("GROUPS") is True and axes[0] == 0:  # random groups: NAXIS1 = 0 is not a factor
        axes = axes[1:]
    pcount = _fits_int(cards, "PCOUNT", name, index, default=0)
    gcount = _fits_int(cards, "GCOUNT", name, index, default=1)
    return abs(bitpix) // 8 * gcount * (pcount + math.prod(axes))


def _fits_image_axes(cards: dict, name: str, index: int) -> list[int] | None:
    """NAXIS1..n of an image HDU, ZNAXIS1..n of a tile-compressed one, None for anything else."""
    extension = cards.get("XTENSION")
    if index == 0 or extension == "IMAGE":
        if cards.get("GROUPS") is True:
            return None
        return [_fits_int(cards, f"NAXIS{i}", name, index) for i in range(1, cards["NAXIS"] + 1)]
    if extension == "BINTABLE" and cards.get("ZIMAGE") is True:
        if cards.get("ZBITPIX") not in _FITS_BITPIX:
            raise DataError(f"{name}: HDU {index}: ZBITPIX {cards.get('ZBITPIX')!r} is not one of {_FITS_BITPIX}")
        znaxis = _fits_int(cards, "ZNAXIS", name, index, high=999)
        axes = [_fits_int(cards, f"ZNAXIS{i}", name, index) for i in range(1, znaxis + 1)]
        tiles = [_fits_int(cards, f"ZTILE{i}", name, index, default=axes[0] if i == 1 else 1, low=1)
                 for i in range(1, znaxis + 1)]
        if math.prod(tiles) > MAX_SIDE * MAX_SIDE:
            shown = "x".join(map(str, tiles))
            raise DataError(f"{name}: HDU {index}: compression tiles of {shown} pixels are too large")
        return axes
    return None


def _check_fits_axes(axes: list[int], name: str, index: int) -> None:
    sides = [n for n in axes if n > 1]
    shown = "x".join(str(n) for n in reversed(axes))
    if len(sides) > 2 or any(n > MAX_SIDE for n in sides) or math.prod(axes) > MAX_SIDE * MAX_SIDE:
        raise DataError(
            f"{name}: HDU {index} holds a {shown} image; one 2-D image with sides of at most {MAX_SIDE} "
            "pixels is accepted (refused before decoding)"
        )


# ------------------------------------------------------------------------------------ PNG / JPEG / TIFF


def _sniff_picture(data: bytes) -> str | None:
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if data.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if data[:4] in (b"II*\x00", b"MM\x00*"):
        return "tiff"
    return None


def _decode_picture(data: bytes, name: str, picture_format: str) -> DecodedImage:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data), formats=[picture_format.upper()]) as picture:
            _check_side_lengths(picture.size[::-1], name)
            if getattr(picture, "n_frames", 1) > 1:
                raise DataError(f"{name}: holds {picture.n_frames} frames; save a single image")
            array = _picture_to_gray(picture)
    except DataError:
        raise
    except (UnidentifiedImageError, Image.DecompressionBombError, OSError, ValueError, SyntaxError) as err:
        raise DataError(f"{name}: unreadable {picture_format.upper()} ({err})") from err
    return DecodedImage(_checked(array, name), name, picture_format)


def _picture_to_gray(picture) -> np.ndarray:
    """A PIL image -> float64 ``[H, W]``; gray modes keep their full depth, colour becomes luminance."""
    if picture.mode in ("L", "F", "I") or picture.mode.startswith("I;16"):
        return np.asarray(picture).astype(np.float64)
    if picture.mode == "LA":
        return np.asarray(picture.getchannel("L")).astype(np.float64)
    if picture.mode == "1":
        return np.asarray(picture.convert("L")).astype(np.float64)
    rgb = np.asarray(picture.convert("RGB")).astype(np.float64)
    return rgb @ np.asarray(LUMINANCE_WEIGHTS)


# -------------------------------------------------------------------------------------------- checks


def _squeezed(array: np.ndarray, name: str) -> np.ndarray:
    squeezed = np.squeeze(array)
    if squeezed.ndim != 2:
        raise DataError(
            f"{name}: shape {array.shape} is not one 2-D image (expected (H, W), (1, H, W) or a flat n*n array)"
        )
    return squeezed


def _check_side_lengths(shape: tuple[int, ...], name: str) -> None:
    if min(shape) < MIN_SIDE or max(shape) > MAX_SIDE:
        raise DataError(f"{name}: image of {shape[0]}x{shape[1]} pixels; sides must be in [{MIN_SIDE}, {MAX_SIDE}]")


def _checked(image: np.ndarray, name: str) -> np.ndarray:
    _check_side_lengths(image.shape, name)
    image = np.asarray(image, dtype=np.float64)
    if not np.isfinite(image).all():
        bad = int(np.size(image) - np.isfinite(image).sum())
        raise DataError(f"{name}: {bad} pixel(s) are NaN or infinite")
    return image
