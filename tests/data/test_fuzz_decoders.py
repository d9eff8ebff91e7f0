"""Property-based fuzz of every decoder of untrusted bytes: .npy, the object-array (axion pair) .npy, FITS,
PNG, and a safetensors checkpoint with its embedded model card.

Promise, for every input: the decoder returns a finite float64 ``[H, W]`` image (a checkpoint: tensors and
a validated card) or raises :class:`DataError` / :class:`CheckpointError`; never another exception, never a
crash, never a hang (a per-example deadline), and never an allocation above ``ADDRESS_SPACE_BOUND``: each
test runs with the soft ``RLIMIT_AS`` set to the process's address space plus that bound, so any larger
allocation, by Python, numpy or a C decoder, fails with MemoryError and fails the test (a MemoryError that
a decoder turned into a DataError is caught by its message). Inputs are at most a few tens of KB.

Deterministic by default (``derandomize``, plus the inputs that once broke a decoder as explicit examples),
about 15 s on one CPU; ``EQLENS_FUZZ_EXAMPLES=2000`` explores
further with fresh random examples.
"""

from __future__ import annotations

import io
import json
import os
import struct
from contextlib import contextmanager

import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from eqlens.data.images import decode_image
from eqlens.errors import CheckpointError, DataError

from .layouts import axion_pair, counts

resource = pytest.importorskip("resource")

ADDRESS_SPACE_BOUND = 512 << 20  # bytes of address space one decode may add (a 4096^2 float64 image is 128 MiB)
_EXPLORE = int(os.environ.get("EQLENS_FUZZ_EXAMPLES", "0"))
FUZZ = settings(
    max_examples=_EXPLORE or 150,
    derandomize=not _EXPLORE,
    deadline=5000,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


def _address_space() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")


@contextmanager
def bounded_address_space():
    """Lower the soft RLIMIT_AS to what the process holds now plus ADDRESS_SPACE_BOUND, then restore it."""
    if not os.path.exists("/proc/self/statm"):  # not Linux: no address-space bound, the rest still holds
        yield
        return
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    limit = _address_space() + ADDRESS_SPACE_BOUND
    if hard != resource.RLIM_INFINITY:
        limit = min(limit, hard)
    resource.setrlimit(resource.RLIMIT_AS, (limit, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))


@pytest.fixture(scope="module", autouse=True)
def _warm_imports():
    """Import every decoder's library before the address space is bounded (imports are not decoding)."""
    import astropy.io.fits  # noqa: F401
    import PIL.PngImagePlugin  # noqa: F401
    import safetensors.torch  # noqa: F401

    decode_image(_npy(counts(0)), "warm.npy")
    decode_image(_png_bytes(), "warm.png")
    decode_image(_fits_bytes(), "warm.fits")


def assert_decodes_or_refuses(data: bytes, name: str) -> None:
    with bounded_address_space():
        try:
            decoded = decode_image(data, name)
        except DataError as err:
            assert "MemoryError" not in str(err), f"over the allocation bound: {err}"
            return
    image = decoded.image
    assert image.dtype == np.float64 and image.ndim == 2 and np.isfinite(image).all()


# ----------------------------------------------------------------------------------------------- .npy


def _npy(array) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=array.dtype.hasobject)
    return buffer.getvalue()


def _npy_header(descr: str, shape: tuple, fortran: bool, version: int = 1) -> bytes:
    buffer = io.BytesIO()
    header = {"descr": descr, "fortran_order": fortran, "shape": shape}
    (np.lib.format.write_array_header_1_0 if version == 1 else np.lib.format.write_array_header_2_0)(buffer, header)
    return buffer.getvalue()


DESCRS = ["<f8", ">f4", "<i2", "|u1", "<u8", "|b1", "<c16", "|O", "<U4", "|V8", "<M8[s]"]
dims = st.one_of(st.integers(0, 40), st.integers(0, 2**63 - 1), st.sampled_from([16, 20, 64, 4096, 4097]))


@FUZZ
@given(descr=st.sampled_from(DESCRS), shape=st.lists(dims, max_size=4).map(tuple), fortran=st.booleans(),
       version=st.sampled_from([1, 2]), payload=st.binary(max_size=4096), pad=st.integers(0, 3))
@example(descr="<f8", shape=(0, 2**30, 2**30), fortran=False, version=1, payload=b"", pad=0)  # numpy cannot size it
@example(descr="<f8", shape=(50000, 50000), fortran=False, version=1, payload=bytes(800), pad=0)  # np.load: 20 GB
def test_fuzz_npy_headers_and_payloads(descr, shape, fortran, version, payload, pad):
    data = _npy_header(descr, shape, fortran, version)
    if descr not in ("|O",) and all(n <= 64 for n in shape):  # sometimes the exact payload length
        itemsize = np.dtype(descr).itemsize
        exact = int(np.prod(shape, dtype=object)) * itemsize
        payload = (payload * (exact // max(len(payload), 1) + 1))[:exact] if payload else bytes(exact)
        payload += b"\x00" * pad if pad == 3 else b""
    assert_decodes_or_refuses(data + payload, "fuzz.npy")


@FUZZ
@given(data=st.binary(max_size=2048))
def test_fuzz_npy_arbitrary_bytes_after_the_magic(data):
    assert_decodes_or_refuses(b"\x93NUMPY" + data, "fuzz.npy")


# ------------------------------------------------------------------------------ object-array .npy (pickle)

_PAIR = _npy(axion_pair(counts(1), 1e-23))
_PAIR_F32 = _npy(axion_pair(counts(2).astype(">f4"), np.float64(3e-24)))


def _mutate(base: bytes, edits, cut: int | None, insert: bytes) -> bytes:
    data = bytearray(base)
    for position, value in edits:
        data[position % len(data)] = value
    if insert:
        at = edits[0][0] % len(data) if edits else len(data) // 2
        data[at:at] = insert
    if cut is not None:
        data = data[: max(cut % (len(data) + 1), 0)]
    return bytes(data)


edits = st.lists(st.tuples(st.integers(0, 10**6), st.integers(0, 255)), max_size=8)


@FUZZ
@given(base=st.sampled_from([_PAIR, _PAIR_F32]), edits=edits, cut=st.none() | st.integers(0, 10**6),
       insert=st.binary(max_size=16))
@example(base=_PAIR, edits=[(_PAIR.index(b"(K\x01K\x02\x85") + 4, 200)], cut=None, insert=b"")  # the segfault
@example(base=_PAIR, edits=[(_PAIR.index(b"'shape': (2,)") + 10, 0)], cut=None, insert=b"")  # NUL in the header
def test_fuzz_object_npy_mutations(base, edits, cut, insert):
    # Edits land mostly in the header and the pickle's opcodes (the first ~300 bytes) or anywhere.
    edits = [(p % 400 if i % 2 == 0 else p, v) for i, (p, v) in enumerate(edits)]
    assert_decodes_or_refuses(_mutate(base, edits, cut, insert), "axion_fuzz.npy")


OPCODES = [b"(", b"t", b")", b"]", b"e", b"a", b"R", b"b", b"N", b"\x88", b"\x89", b"\x85", b"\x86", b"\x87",
           b"K\x02", b"K\xff", b"J\xff\xff\xff\x7f", b"q\x00", b"h\x00", b"h\x07", b"\x94",
           b"cnumpy.core.multiarray\n_reconstruct\n", b"cnumpy\nndarray\n", b"cnumpy\ndtype\n",
           b"cnumpy.core.multiarray\nscalar\n", b"c_codecs\nencode\n", b"cos\nsystem\n", b"X\x02\x00\x00\x00O8",
           b"X\x02\x00\x00\x00f8", b"X\x01\x00\x00\x00<", b"C\x08" + bytes(8), b"B\x00\x00\x01\x00",
           b"\x8c\x05numpy", b"\x93", b"G" + bytes(8), b"\x8a\x01\x05", b"0", b"."]


@FUZZ
@given(ops=st.lists(st.sampled_from(OPCODES), max_size=60), tail=st.binary(max_size=64))
def test_fuzz_object_npy_opcode_soup(ops, tail):
    data = _npy_header("|O", (2,), False) + b"\x80\x03" + b"".join(ops) + tail
    assert_decodes_or_refuses(data, "soup.npy")


# ----------------------------------------------------------------------------------------------- FITS


def _fits_bytes(compressed: bool = True) -> bytes:
    from astropy.io import fits

    image = counts(3, 24).astype(np.int32)
    hdu = fits.CompImageHDU(image) if compressed else fits.ImageHDU(image)
    buffer = io.BytesIO()
    fits.HDUList([fits.PrimaryHDU(), hdu]).writeto(buffer)
    return buffer.getvalue()


_FITS = [_fits_bytes(True), _fits_bytes(False)]
FITS_KEYS = ["BITPIX", "NAXIS", "NAXIS1", "NAXIS2", "NAXIS3", "PCOUNT", "GCOUNT", "ZNAXIS", "ZNAXIS1", "ZNAXIS2",
             "ZBITPIX", "ZTILE1", "ZTILE2", "THEAP", "TFIELDS"]
fits_values = st.one_of(st.integers(-70, 70), st.integers(0, 10**12), st.sampled_from([4096, 4097, 20000, 2**31]),
                        st.sampled_from(["T", "F", "'IMAGE'", "'BINTABLE'", "1.5", "", "'RICE_1'", "'GZIP_1'"]))


def _set_card(data: bytes, key: str, value) -> bytes:
    """Rewrite the first card ``key`` (in any header) to ``value``; append nothing if it is absent."""
    name = key.ljust(8).encode()
    for at in range(0, len(data) - 80, 80):
        if data[at : at + 8] == name:
            card = f"{key:<8}= {value!s:>20}".ljust(80)[:80].encode()
            return data[:at] + card + data[at + 80 :]
    return data


@FUZZ
@given(base=st.sampled_from(_FITS), cards=st.lists(st.tuples(st.sampled_from(FITS_KEYS), fits_values), max_size=5),
       edits=edits, cut=st.none() | st.integers(0, 10**6))
@example(base=_FITS[0], cards=[("TFIELDS", 10**12)], edits=[], cut=None)  # astropy looped over it
@example(base=_FITS[0], cards=[("ZNAXIS1", 40000), ("ZNAXIS2", 40000)], edits=[], cut=None)  # the bomb
def test_fuzz_fits_headers_and_data(base, cards, edits, cut):
    data = base
    for key, value in cards:
        data = _set_card(data, key, value)
    data = _mutate(data, [(p % len(data), v) for p, v in edits[:3]], cut, b"")
    if not data.startswith(b"SIMPLE  ="):
        data = b"SIMPLE  =" + data[9:]
    assert_decodes_or_refuses(data, "fuzz.fits")


@FUZZ
@given(data=st.binary(max_size=6000))
def test_fuzz_fits_arbitrary_bytes_after_the_keyword(data):
    assert_decodes_or_refuses(b"SIMPLE  =" + data, "fuzz.fits")


# ------------------------------------------------------------------------------------------------ PNG


def _png_bytes(mode: str = "L") -> bytes:
    from PIL import Image

    array = counts(4, 24).astype(np.uint8)
    picture = Image.fromarray(array).convert(mode)
    buffer = io.BytesIO()
    picture.save(buffer, format="PNG")
    return buffer.getvalue()


_PNG = [_png_bytes("L"), _png_bytes("RGB"), _png_bytes("I;16"), _png_bytes("P")]


def _png_chunk(kind: bytes, body: bytes) -> bytes:
    import zlib

    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)


@FUZZ
@given(base=st.sampled_from(_PNG), edits=edits, cut=st.none() | st.integers(0, 10**6), insert=st.binary(max_size=16),
       width=st.none() | st.integers(0, 2**31 - 1), height=st.integers(0, 2**31 - 1))
def test_fuzz_png_mutations_and_claimed_sizes(base, edits, cut, insert, width, height):
    data = base
    if width is not None:  # a consistent IHDR (valid CRC) that claims another size
        ihdr = bytearray(data[16:29])
        ihdr[0:8] = struct.pack(">II", width, height)
        data = data[:8] + _png_chunk(b"IHDR", bytes(ihdr)) + data[33:]
    data = _mutate(data, [(8 + p % (len(data) - 8), v) for p, v in edits], cut, insert)
    if not data.startswith(b"\x89PNG\r\n\x1a\n"):
        data = b"\x89PNG\r\n\x1a\n" + data[8:]
    assert_decodes_or_refuses(data, "fuzz.png")


@FUZZ
@given(chunks=st.lists(st.tuples(st.sampled_from([b"IHDR", b"IDAT", b"zTXt", b"iCCP", b"PLTE", b"tRNS", b"IEND"]),
                                 st.binary(max_size=300)), max_size=6))
def test_fuzz_png_chunk_soup(chunks):
    data = b"\x89PNG\r\n\x1a\n" + b"".join(_png_chunk(kind, body) for kind, body in chunks)
    assert_decodes_or_refuses(data, "soup.png")


# --------------------------------------------------------------------------------- safetensors + card


def _read_checkpoint_or_refuse(data: bytes) -> None:
    from eqlens.checkpoint import ModelCard, read_checkpoint

    with bounded_address_space():
        try:
            tensors, card = read_checkpoint(data)
        except CheckpointError as err:
            assert "MemoryError" not in str(err), f"over the allocation bound: {err}"
            return
    assert isinstance(card, ModelCard) and all(hasattr(t, "shape") for t in tensors.values())


json_scalars = st.one_of(st.none(), st.booleans(), st.integers(-(2**70), 2**70), st.floats(allow_nan=True),
                         st.text(max_size=12))
json_values = st.recursive(json_scalars, lambda inner: st.lists(inner, max_size=4)
                           | st.dictionaries(st.text(max_size=8), inner, max_size=4), max_leaves=12)
tensor_entries = st.fixed_dictionaries({
    "dtype": st.sampled_from(["F32", "F64", "I64", "BF16", "U8", "BOOL", "F8_E4M3", "X"]),
    "shape": st.lists(st.one_of(st.integers(0, 8), st.integers(0, 2**62)), max_size=4),
    "data_offsets": st.tuples(st.integers(0, 2**40), st.integers(0, 2**40)).map(list),
})


def _safetensors(header: dict, payload: bytes) -> bytes:
    text = json.dumps(header).encode()
    return struct.pack("<Q", len(text)) + text + payload


def _card() -> dict:
    return {"format": "eqlens-checkpoint", "format_version": 1, "class_names": ["no_sub", "sub"],
            "model": {"name": "cnn", "build_config": {"name": "cnn", "num_classes": 2, "image_size": 24}},
            "input": {"image_size": 24}}


@FUZZ
@given(tensors=st.dictionaries(st.text(min_size=1, max_size=8), tensor_entries, max_size=3),
       card_edits=st.dictionaries(st.sampled_from(["format", "format_version", "class_names", "model", "input",
                                                   "task", "group"]), json_values, max_size=3),
       build_edits=st.dictionaries(st.sampled_from(["name", "num_classes", "image_size", "group", "channels"]),
                                   json_values, max_size=2),
       input_edits=st.dictionaries(st.sampled_from(["image_size", "crop", "circular_mask"]), json_values, max_size=2),
       payload=st.binary(max_size=512))
def test_fuzz_safetensors_with_an_embedded_card(tensors, card_edits, build_edits, input_edits, payload):
    card = _card()
    card["model"]["build_config"].update(build_edits)
    card["input"].update(input_edits)
    card.update(card_edits)
    header = {**tensors, "__metadata__": {"eqlens_card": json.dumps(card)}}
    _read_checkpoint_or_refuse(_safetensors(header, payload))


@FUZZ
@given(length=st.one_of(st.integers(0, 2**64 - 1), st.integers(0, 600)), body=st.binary(max_size=600))
def test_fuzz_safetensors_arbitrary_bytes(length, body):
    _read_checkpoint_or_refuse(struct.pack("<Q", length) + body)
