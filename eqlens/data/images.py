"""Decode one lensing image file (or uploaded bytes) into a float64 ``[H, W]`` array, refusing anything unsafe.

Formats are recognised by their first bytes, not by the file name (the name only labels errors):

- ``.npy``: ``(H, W)`` counts or floats; ``(1, H, W)`` (any unit axes are squeezed); the DeepLense axion
  pair, a 1-D object array ``[image, axion_mass]``; a flat ``(n*n,)`` image; a flat ``(n*n + 1,)`` image
  with its integer label appended (``n*n + 1`` is never a square, so the two flat forms cannot be confused).
- PNG / JPEG / TIFF (8 and 16 bit, float TIFF); colour is reduced to BT.601 luminance
  ``0.299 R + 0.587 G + 0.114 B`` in float (no rounding to 8 bit); alpha is dropped.
- FITS: the first image HDU holding data; a cube with a single plane is squeezed.

Pickles: an object ``.npy`` is unpickled only if its header says a 1-D object array of length 2, and then
by an unpickler that resolves numpy's array-reconstruction globals alone; any other global (``os.system``,
``builtins.eval``, ...) raises :class:`DataError` before it can be called.

Nothing is normalised here: the one normalisation lives in :mod:`eqlens.data.transforms`.
"""

from __future__ import annotations

import io
import math
import os
import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np

from ..errors import DataError

MAX_FILE_BYTES = 64 * 2**20
MIN_SIDE = 16
MAX_SIDE = 4096
NPY_SUFFIXES = (".npy",)
PICTURE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff")
FITS_SUFFIXES = (".fits", ".fit", ".fts")
SUPPORTED_SUFFIXES = NPY_SUFFIXES + PICTURE_SUFFIXES + FITS_SUFFIXES
LUMINANCE_WEIGHTS = (0.299, 0.587, 0.114)

ImageSource = str | os.PathLike | bytes | bytearray | memoryview | BinaryIO

# Taken from numpy's own reducers so the names work for numpy 1.x ("numpy.core") and 2.x ("numpy._core").
_RECONSTRUCT = np.ndarray((0,)).__reduce__()[0]
_SCALAR = np.float64(0).__reduce__()[0]
_SAFE_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"): _RECONSTRUCT,
    ("numpy._core.multiarray", "_reconstruct"): _RECONSTRUCT,
    ("numpy.core.multiarray", "scalar"): _SCALAR,
    ("numpy._core.multiarray", "scalar"): _SCALAR,
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
}


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
    """Like :func:`load_image`, also reporting the layout, the axion mass and an appended label."""
    data, name = _read_source(source, filename, max_bytes)
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
    shape, dtype = _read_npy_header(stream, name)
    if dtype.hasobject:
        image, mass = _read_axion_pair(stream, shape, name)
        return DecodedImage(_checked(_squeezed(image, name), name), name, "npy_axion_pair", axion_mass=mass)
    if dtype.kind not in "iuf":
        raise DataError(f"{name}: dtype {dtype} is not a real-valued image")
    try:
        array = np.load(io.BytesIO(data), allow_pickle=False)
    except ValueError as err:
        raise DataError(f"{name}: unreadable .npy ({err})") from err
    if array.ndim == 1:
        return _decode_flat(array, name)
    layout = "npy_image" if array.ndim == 2 else "npy_channel"
    return DecodedImage(_checked(_squeezed(array, name), name), name, layout)


def _read_npy_header(stream: BinaryIO, name: str) -> tuple[tuple[int, ...], np.dtype]:
    try:
        version = np.lib.format.read_magic(stream)
        if version == (1, 0):
            shape, _, dtype = np.lib.format.read_array_header_1_0(stream)
        elif version == (2, 0):
            shape, _, dtype = np.lib.format.read_array_header_2_0(stream)
        else:
            raise DataError(f"{name}: .npy format version {version} is not supported (1.0 and 2.0 are)")
    except ValueError as err:
        raise DataError(f"{name}: corrupt .npy header ({err})") from err
    return shape, dtype


class _ArrayOnlyUnpickler(pickle.Unpickler):
    """Resolves numpy's array-reconstruction globals and nothing else."""

    def __init__(self, file: BinaryIO, name: str):
        super().__init__(file)
        self._name = name

    def find_class(self, module: str, name: str):
        try:
            return _SAFE_GLOBALS[(module, name)]
        except KeyError:
            raise DataError(
                f"{self._name}: refusing to unpickle {module}.{name}; only the DeepLense [image, mass] "
                "numpy pair is accepted"
            ) from None


def _read_axion_pair(stream: BinaryIO, shape: tuple[int, ...], name: str) -> tuple[np.ndarray, float]:
    if shape != (2,):
        raise DataError(
            f"{name}: an object array of shape {shape} is not the [image, axion_mass] pair; refusing to unpickle"
        )
    try:
        pair = _ArrayOnlyUnpickler(stream, name).load()
    except DataError:
        raise
    except Exception as err:  # a corrupt pickle can raise almost anything
        raise DataError(f"{name}: corrupt pickled [image, mass] pair ({type(err).__name__}: {err})") from err
    if type(pair) is not np.ndarray or pair.dtype != object or pair.shape != (2,):
        raise DataError(f"{name}: the pickle does not hold a 1-D object array of length 2")
    image, mass = pair[0], pair[1]
    if type(image) is not np.ndarray or image.dtype.kind not in "iuf":
        raise DataError(f"{name}: the first item of the pair is not a numeric image array")
    is_number = isinstance(mass, (int, float, np.integer, np.floating)) and not isinstance(mass, (bool, np.bool_))
    if not is_number or not math.isfinite(float(mass)):
        raise DataError(f"{name}: the second item of the pair is not a finite number (got {mass!r})")
    return image, float(mass)


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
    image = _checked(array[:-1].reshape(side, side), name)
    return DecodedImage(image, name, "npy_flat_labeled", label=int(label))


# ----------------------------------------------------------------------------------------------- FITS


def _decode_fits(data: bytes, name: str) -> DecodedImage:
    from astropy.io import fits  # a few hundred ms to import; only FITS users pay it

    try:
        with fits.open(io.BytesIO(data), memmap=False) as hdus:
            for hdu in hdus:
                if hdu.is_image and hdu.data is not None and hdu.data.size > 0:
                    array = np.array(hdu.data, dtype=np.float64)
                    break
            else:
                raise DataError(f"{name}: the FITS file has no image HDU with data")
    except DataError:
        raise
    except Exception as err:  # astropy raises OSError, ValueError, VerifyError, ... for broken files
        raise DataError(f"{name}: unreadable FITS file ({type(err).__name__}: {err})") from err
    return DecodedImage(_checked(_squeezed(array, name), name), name, "fits")


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
