"""Promise: no byte of a .npy reaches pickle, np.load or numpy's ndarray.__setstate__. Arrays are rebuilt
from checked shapes, dtypes and exact payload lengths, so a crafted file is a DataError, never a crash or a
large allocation; every legitimate way numpy writes the axion pair still decodes to the same values."""

from __future__ import annotations

import io
import pickle
import subprocess
import sys
import textwrap
import tracemalloc
from pathlib import Path

import numpy as np
import pytest

from eqlens.data.images import decode_image, load_image
from eqlens.errors import DataError

from .layouts import axion_pair, counts

ROOT = Path(__file__).resolve().parents[2]


def _npy(array) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=array.dtype.hasobject)
    return buffer.getvalue()


def _object_npy(pickled: bytes) -> bytes:
    """A .npy header for a (2,) object array followed by ``pickled`` (any protocol)."""
    buffer = io.BytesIO()
    np.lib.format.write_array_header_1_0(buffer, {"descr": "|O", "fortran_order": False, "shape": (2,)})
    return buffer.getvalue() + pickled


def crafted_outer_shape(outer: int = 200, size: int = 64) -> bytes:
    """The issue's file: an axion pair whose pickled outer shape was edited from 2 to ``outer``."""
    data = bytearray(_npy(axion_pair(counts(0, size), 1e-23)))
    at = data.index(b"(K\x01K\x02\x85")  # MARK, version 1, shape (2,) as TUPLE1
    data[at + 4] = outer
    return bytes(data)


_CHILD = textwrap.dedent("""
    import sys
    from eqlens.data.images import load_image
    from eqlens.errors import DataError
    for path in sys.argv[1:]:
        try:
            load_image(path)
            print("decoded", flush=True)
        except DataError as err:
            print("refused:", err, flush=True)
""")


def _decode_in_child(tmp_path, files: dict[str, bytes]) -> list[str]:
    """Decode each file in a fresh interpreter (a crash must not take the test run with it); assert it
    exited normally and return one line per file."""
    paths = []
    for name, data in files.items():
        paths.append(tmp_path / name)
        paths[-1].write_bytes(data)
    result = subprocess.run([sys.executable, "-c", _CHILD, *map(str, paths)], cwd=ROOT, capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0, (result.returncode, result.stdout[-2000:], result.stderr[-2000:])
    lines = result.stdout.splitlines()
    assert len(lines) == len(files), lines
    return lines


def test_the_crafted_object_array_is_refused_in_a_child_that_exits_normally(tmp_path):
    # Before the fix numpy's __setstate__ read past the pickled list and the process died with SIGSEGV (-11).
    [line] = _decode_in_child(tmp_path, {"axion_sim_1.npy": crafted_outer_shape()})
    assert line.startswith("refused:") and "must carry exactly 200 items" in line


def test_any_edited_outer_shape_is_refused(tmp_path):
    outers = [0, 1, 3, 50, 255]
    lines = _decode_in_child(tmp_path, {f"outer_{n}.npy": crafted_outer_shape(n, size=20) for n in outers})
    for n, line in zip(outers, lines, strict=True):
        assert line.startswith(f"refused: {tmp_path / f'outer_{n}.npy'}"), line


def _edit_inner_shape(data: bytes, new_side: int) -> bytes:
    data = bytearray(data)
    at = data.index(b"K\x14K\x14\x86")  # the 20x20 image's shape (BININT1 20, BININT1 20, TUPLE2)
    data[at + 1] = data[at + 3] = new_side
    return bytes(data)


def test_an_inner_image_whose_shape_disagrees_with_its_payload_is_refused(tmp_path):
    sides = [19, 21, 255]
    good = _npy(axion_pair(counts(0), 1e-23))
    lines = _decode_in_child(tmp_path, {f"inner_{n}.npy": _edit_inner_shape(good, n) for n in sides})
    assert all(line.startswith("refused:") and "needs exactly" in line for line in lines), lines


def test_a_numeric_header_claiming_more_pixels_than_the_file_holds_allocates_nothing():
    # np.load would allocate the header's 50000 x 50000 float64 (20 GB) before finding the data missing.
    buffer = io.BytesIO()
    np.lib.format.write_array_header_1_0(buffer, {"descr": "<f8", "fortran_order": False, "shape": (50000, 50000)})
    data = buffer.getvalue() + bytes(800)
    tracemalloc.start()
    try:
        with pytest.raises(DataError, match="needs exactly 20000000000 bytes"):
            load_image(data, "claims.npy")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 1 << 20


def test_trailing_bytes_after_a_numeric_payload_are_refused():
    with pytest.raises(DataError, match="needs exactly"):
        load_image(_npy(counts(0).astype(np.float32)) + b"\x00" * 4, "tail.npy")


@pytest.mark.parametrize("protocol", [2, 3, 4, 5])
def test_the_axion_pair_decodes_under_every_pickle_protocol(protocol):
    image = counts(3).astype(np.float32)
    data = _object_npy(pickle.dumps(axion_pair(image, 4e-23), protocol=protocol))
    if protocol == 5:  # in-band buffers need numpy's _frombuffer, a global the reader does not know
        with pytest.raises(DataError, match="refusing to unpickle"):
            decode_image(data, "p5.npy")
        return
    decoded = decode_image(data, "lens.npy")
    np.testing.assert_array_equal(decoded.image, image)
    assert decoded.axion_mass == 4e-23


@pytest.mark.parametrize("dtype", ["<f4", ">f4", ">f8", "<i2", ">u2", "u1", "<i8"])
@pytest.mark.parametrize("order", ["C", "F"])
def test_pair_images_of_every_byte_order_and_memory_order_decode_exactly(dtype, order):
    image = np.asarray(counts(4).reshape(20, 20)[:, ::-1] % 200, dtype=dtype, order=order)
    image = np.asfortranarray(image) if order == "F" else np.ascontiguousarray(image)
    decoded = decode_image(_npy(axion_pair(image, np.float32(1.5e-22))), "lens.npy")
    np.testing.assert_array_equal(decoded.image, image.astype(np.float64))
    assert decoded.axion_mass == float(np.float32(1.5e-22))


@pytest.mark.parametrize("order", ["C", "F"])
def test_plain_arrays_in_fortran_order_and_big_endian_decode_exactly(order):
    image = np.asarray(np.arange(400, dtype=">f8").reshape(20, 20), order=order)
    decoded = decode_image(_npy(image), "lens.npy")
    np.testing.assert_array_equal(decoded.image, image)


def test_a_pickled_global_outside_numpy_is_named_and_refused():
    pickled = pickle.dumps(axion_pair(counts(0), 1e-23), protocol=3)
    evil = pickled.replace(b"cnumpy.core.multiarray\n_reconstruct\n", b"cos\nsystem\n", 1)
    with pytest.raises(DataError, match="refusing to unpickle os.system"):
        decode_image(_object_npy(evil), "evil.npy")


def test_a_pickle_with_a_long_opcode_stream_is_refused_quickly():
    pickled = b"\x80\x03" + b"(" * 100_000 + b"N."  # MARK after MARK: no pair ever needs this
    with pytest.raises(DataError, match="over 2000 opcodes"):
        decode_image(_object_npy(pickled), "evil.npy")


def test_an_empty_array_with_huge_sides_is_refused():
    # numpy cannot even size (0, 2**30, 2**30) float64: it raised a bare ValueError from reshape.
    buffer = io.BytesIO()
    np.lib.format.write_array_header_1_0(buffer, {"descr": "<f8", "fortran_order": False, "shape": (0, 2**30, 2**30)})
    with pytest.raises(DataError, match="holds no pixels"):
        load_image(buffer.getvalue(), "empty.npy")


def test_a_nul_byte_in_the_header_is_a_data_error():
    # numpy's header parser falls back to the tokenizer, which raised tokenize.TokenError.
    data = bytearray(_npy(counts(0)))
    data[data.index(b"'shape': (") + 9] = 0  # the opening parenthesis
    with pytest.raises(DataError, match="corrupt .npy header"):
        load_image(bytes(data), "nul.npy")
