"""Decode untrusted bytes (uploads) in a child process with a memory, CPU-time and wall-clock limit.

Whatever a decoder does with a hostile file (a segfault in a C extension, a decompression bomb, an endless
loop), the calling process (the app's server) lives and gets a :class:`DataError`:

- the child is a fresh interpreter (``python -I``) that imports the decoders (numpy, Pillow, astropy as the
  file needs) but never torch, then sets ``RLIMIT_AS`` to its address space so far plus ``memory_bytes``,
  ``RLIMIT_CPU`` to ``timeout_s`` and ``RLIMIT_CORE`` to 0, and only then reads the bytes and decodes them;
- the parent waits at most ``timeout_s`` of wall time, then kills it;
- the child's answer is a JSON line and the raw little-endian float64 pixels, written to a temporary file
  that ``RLIMIT_FSIZE`` bounds; the parent unpickles nothing: it checks the shape and that the pixel bytes
  are exactly ``H * W * 8`` long, and checks the image again (finite, sides in range).

A child killed by a signal, over its memory or time, or answering anything malformed gives a
:class:`DataError` naming the file and the reason. Starting the child costs about 0.3 s (0.6 s for FITS).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from ..errors import DataError

DEFAULT_MEMORY_BYTES = 1 << 30  # over what the child holds after its imports: a 4096^2 RGB 16-bit PNG needs ~0.6 GB
DEFAULT_TIMEOUT_S = 30.0
_MAX_META_BYTES = 1 << 16
_MAX_MESSAGE = 600
_PACKAGE_PARENT = str(Path(__file__).resolve().parent.parent.parent)
_DATA_DIR = str(Path(__file__).resolve().parent)
DECODER = "eqlens.data.images:decode_image"

# The child's first lines: make ``eqlens.data`` a bare package (its __init__ imports torch, which a
# decoder never needs), then hand over to _child_main. argv: [-c, package parent, data dir, ...].
_BOOTSTRAP = (
    "import sys, types; sys.path.insert(0, sys.argv[1]); import eqlens; "
    "pkg = types.ModuleType('eqlens.data'); pkg.__path__ = [sys.argv[2]]; sys.modules['eqlens.data'] = pkg; "
    "from eqlens.data.sandbox import _child_main; sys.exit(_child_main(sys.argv[3:]))"
)


def decode_untrusted(data: bytes, filename: str, *, memory_bytes: int = DEFAULT_MEMORY_BYTES,
                     timeout_s: float = DEFAULT_TIMEOUT_S, decoder: str = DECODER, max_pixels: int | None = None):
    """:func:`eqlens.data.images.decode_image` of ``data`` run in a limited child process; returns its
    :class:`~eqlens.data.images.DecodedImage` or raises :class:`DataError` (never crashes the caller).
    ``decoder``: the ``"module:function"`` the child runs (tests pass misbehaving ones). ``max_pixels``:
    an image with more pixels is refused from the child's answered shape, before its pixels are read
    (the caller never holds a larger image than it accepts)."""
    from .images import MAX_CLASSES, MAX_FILE_BYTES, MAX_SIDE, DecodedImage, _checked, _finite_float

    name = filename or "<uploaded bytes>"
    if len(data) > MAX_FILE_BYTES:
        raise DataError(f"{name}: {len(data)} bytes is over the {MAX_FILE_BYTES}-byte limit")
    meta, pixels = run_in_child(decoder, bytes(data), name, memory_bytes=memory_bytes, timeout_s=timeout_s,
                                max_pixels=max_pixels)
    shape = meta.get("shape")
    if (type(shape) is not list or len(shape) != 2
            or not all(type(n) is int and 0 < n <= MAX_SIDE for n in shape)):
        raise DataError(f"{name}: the decoder answered without a valid image shape")
    if len(pixels) != shape[0] * shape[1] * 8:
        raise DataError(f"{name}: the decoder answered {len(pixels)} bytes for a {shape[0]}x{shape[1]} image")
    image = _checked(np.frombuffer(pixels, dtype="<f8").reshape(shape).astype(np.float64), name)
    layout = meta.get("layout")
    mass, label = meta.get("axion_mass"), meta.get("label")
    return DecodedImage(
        image,
        name,
        layout if isinstance(layout, str) else "unknown",
        axion_mass=_finite_float(mass) if type(mass) in (int, float) else None,
        label=label if type(label) is int and 0 <= label < MAX_CLASSES else None,
    )


def run_in_child(target: str, data: bytes, name: str, *, memory_bytes: int = DEFAULT_MEMORY_BYTES,
                 timeout_s: float = DEFAULT_TIMEOUT_S, max_pixels: int | None = None) -> tuple[dict, bytes]:
    """Run ``target`` (``"module:function"``, called as ``function(data, filename=name)`` and returning an
    object with an ``image`` attribute) in a limited child; returns its metadata and raw pixel bytes.
    :class:`DataError` for a refusal (the decoder's own message), a crash, a limit reached, or (with
    ``max_pixels``) an answered shape of more pixels, refused before the pixels are read."""
    from .images import MAX_SIDE

    max_output = _MAX_META_BYTES + MAX_SIDE * MAX_SIDE * 8
    with tempfile.TemporaryFile() as stdin, tempfile.TemporaryFile() as stdout:
        stdin.write(data)
        stdin.seek(0)
        command = [sys.executable, "-I", "-c", _BOOTSTRAP, _PACKAGE_PARENT, _DATA_DIR, target, name,
                   str(int(memory_bytes)), str(max(1, int(timeout_s + 0.999))), str(max_output)]
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "OMP_NUM_THREADS": "1",
               "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "LANG": "C.UTF-8"}
        for key in ("HOME", "TMPDIR", "XDG_CACHE_HOME", "XDG_CONFIG_HOME"):  # astropy looks for its config dir
            if key in os.environ:
                env[key] = os.environ[key]
        try:
            process = subprocess.Popen(command, stdin=stdin, stdout=stdout, stderr=subprocess.DEVNULL, env=env,
                                       close_fds=True)
        except OSError as err:
            raise DataError(f"{name}: cannot start the decoder process ({err})") from None
        try:
            code = process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
            raise DataError(f"{name}: decoding took longer than {timeout_s:g} s; refused") from None
        stdout.seek(0)
        meta_line = stdout.readline(_MAX_META_BYTES)
        if code != 0:
            raise DataError(f"{name}: {_failure(code, meta_line, memory_bytes, timeout_s)}")
        try:
            meta = json.loads(meta_line)
        except ValueError:
            raise DataError(f"{name}: the decoder answered something unreadable") from None
        if not isinstance(meta, dict):
            raise DataError(f"{name}: the decoder answered something unreadable")
        if "error" in meta:
            raise DataError(str(meta["error"])[:_MAX_MESSAGE])
        _check_pixel_count(meta.get("shape"), name, max_pixels)
        remaining = os.fstat(stdout.fileno()).st_size - stdout.tell()
        if remaining > max_output:
            raise DataError(f"{name}: the decoder answered over {max_output} bytes")
        pixels = stdout.read(remaining)
    return meta, pixels


def _check_pixel_count(shape, name: str, max_pixels: int | None) -> None:
    if max_pixels is None or type(shape) is not list or len(shape) != 2 or not all(type(n) is int for n in shape):
        return  # a malformed shape is decode_untrusted's to refuse
    if shape[0] * shape[1] > max_pixels:
        side = int(max_pixels ** 0.5)
        limit = f"{side}x{side}" if side * side == max_pixels else str(max_pixels)
        raise DataError(f"{name}: {shape[0]}x{shape[1]} is too large (at most {limit} pixels)")


def _failure(code: int, meta_line: bytes, memory_bytes: int, timeout_s: float) -> str:
    import signal

    try:
        meta = json.loads(meta_line) if meta_line else {}
    except ValueError:
        meta = {}
    if isinstance(meta, dict) and meta.get("memory"):
        return f"decoding needs more than {memory_bytes / 2**20:.0f} MiB of memory; refused"
    if code < 0:
        number = -code
        try:
            signame = signal.Signals(number).name
        except ValueError:
            signame = f"signal {number}"
        if number in (signal.SIGXCPU, signal.SIGKILL):
            return f"decoding was stopped ({signame}: over {timeout_s:g} s of CPU or over its memory); refused"
        return f"the decoder crashed on this file ({signame}); the file is refused and nothing else was affected"
    return f"the decoder failed on this file (exit status {code}); refused"


# ---------------------------------------------------------------------------------------------- child


def _address_space() -> int:
    """This process's virtual memory size in bytes (what RLIMIT_AS counts)."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0


def _child_main(argv: list[str]) -> int:
    target, name, memory_bytes, cpu_s, max_output = argv[0], argv[1], int(argv[2]), int(argv[3]), int(argv[4])
    out = sys.stdout.buffer
    head = sys.stdin.buffer.read(16)
    module_name, _, function_name = target.partition(":")
    # Imports first (their memory is not the file's), chosen by the file's first bytes.
    import importlib

    import numpy  # noqa: F401

    if head.startswith(b"SIMPLE  ="):
        import astropy.io.fits  # noqa: F401
    elif not head.startswith(b"\x93NUMPY"):
        import PIL.Image  # noqa: F401
    function = getattr(importlib.import_module(module_name), function_name)
    _set_limits(memory_bytes, cpu_s, max_output)
    try:
        data = head + sys.stdin.buffer.read()
        decoded = function(data, filename=name)
        image = np.ascontiguousarray(decoded.image, dtype="<f8")
        if image.ndim != 2:
            raise DataError(f"{name}: the decoder gave a {image.ndim}-D array")
        meta = {"shape": list(image.shape), "layout": getattr(decoded, "layout", None),
                "axion_mass": getattr(decoded, "axion_mass", None), "label": getattr(decoded, "label", None)}
    except DataError as err:
        meta, image = {"error": str(err)[:_MAX_MESSAGE]}, None
    except MemoryError:
        out.write(json.dumps({"memory": True}).encode() + b"\n")
        out.flush()
        return 3
    except Exception as err:  # a decoder bug: refuse the file, say what happened
        meta, image = {"error": f"{name}: cannot decode ({type(err).__name__}: {str(err)[:200]})"}, None
    out.write(json.dumps(meta).encode() + b"\n")
    if image is not None:
        out.write(memoryview(image).cast("B"))
    out.flush()
    return 0


def _set_limits(memory_bytes: int, cpu_s: int, max_output: int) -> None:
    try:
        import resource
    except ImportError:  # not a POSIX system: the parent's wall-clock limit still holds
        return
    limits = [(resource.RLIMIT_CORE, 0), (resource.RLIMIT_CPU, cpu_s), (resource.RLIMIT_FSIZE, max_output)]
    address_space = _address_space()
    if address_space:
        limits.append((resource.RLIMIT_AS, address_space + memory_bytes))
    for kind, value in limits:
        soft, hard = resource.getrlimit(kind)
        if hard != resource.RLIM_INFINITY:
            value = min(value, hard)
        resource.setrlimit(kind, (value, value if hard == resource.RLIM_INFINITY else hard))
