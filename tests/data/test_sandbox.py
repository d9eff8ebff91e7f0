"""Promise of eqlens.data.sandbox: untrusted bytes are decoded in a child process; whatever the decoder
does there (crash, exhaust memory, loop, answer garbage), the caller lives and gets a DataError; a good
file gives exactly what an in-process decode gives."""

from __future__ import annotations

import io
import os
import time

import numpy as np
import pytest
from PIL import Image

from eqlens.data.images import decode_image
from eqlens.data.sandbox import decode_untrusted
from eqlens.errors import DataError

from .layouts import axion_pair, counts

TARGETS = "tests.data.sandbox_targets"


def _npy(array) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=array.dtype.hasobject)
    return buffer.getvalue()


def _png(array) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()


def _fits(array) -> bytes:
    from astropy.io import fits

    buffer = io.BytesIO()
    fits.HDUList([fits.PrimaryHDU(), fits.CompImageHDU(array)]).writeto(buffer)
    return buffer.getvalue()


@pytest.mark.parametrize("kind", ["npy", "axion", "png", "fits"])
def test_a_good_file_decodes_in_the_child_exactly_as_in_process(kind):
    image = counts(7, 24)
    data = {"npy": lambda: _npy(image.astype(np.float32)), "axion": lambda: _npy(axion_pair(image, 2.5e-23)),
            "png": lambda: _png(image.astype(np.uint8)), "fits": lambda: _fits(image.astype(np.int32))}[kind]()
    here = decode_image(data, "lens")
    there = decode_untrusted(data, "lens")
    assert there.image.dtype == np.float64 and there.layout == here.layout
    np.testing.assert_array_equal(there.image, here.image)
    assert there.axion_mass == here.axion_mass and there.label == here.label


def test_a_refusal_in_the_child_keeps_its_message():
    with pytest.raises(DataError, match=r"nan\.npy: 1024 pixel\(s\) are NaN"):
        decode_untrusted(_npy(np.full((32, 32), np.nan)), "nan.npy")


def test_a_decoder_that_segfaults_costs_the_child_only():
    with pytest.raises(DataError, match=r"bad\.npy: the decoder crashed on this file \(SIGSEGV\)"):
        decode_untrusted(b"\x93NUMPY anything", "bad.npy", decoder=f"{TARGETS}:segfault")
    assert os.getpid()  # still here: the next decode works
    assert decode_untrusted(_npy(counts(1)), "ok.npy").image.shape == (20, 20)


def test_a_decoder_that_exhausts_memory_is_stopped_at_the_limit():
    start = time.monotonic()
    with pytest.raises(DataError, match=r"bomb\.png: decoding needs more than 64 MiB of memory"):
        decode_untrusted(b"\x89PNG\r\n\x1a\n", "bomb.png", memory_bytes=64 << 20, decoder=f"{TARGETS}:hog")
    assert time.monotonic() - start < 20


def test_a_decoder_that_never_returns_is_killed_at_the_timeout():
    start = time.monotonic()
    with pytest.raises(DataError, match=r"loop\.fits: decoding (took longer than 2 s|was stopped)"):
        decode_untrusted(b"SIMPLE  =", "loop.fits", timeout_s=2, decoder=f"{TARGETS}:spin")
    assert time.monotonic() - start < 10


@pytest.mark.parametrize(("target", "message"), [("garbage", "unreadable"), ("lying", "answered 64 bytes")])
def test_a_malformed_answer_from_the_child_is_refused(target, message):
    with pytest.raises(DataError, match=message):
        decode_untrusted(_npy(counts(1)), "x.npy", decoder=f"{TARGETS}:{target}")


def test_over_the_file_limit_is_refused_before_starting_a_child():
    from eqlens.data.images import MAX_FILE_BYTES

    with pytest.raises(DataError, match="byte limit"):
        decode_untrusted(b"\x93NUMPY" + bytes(MAX_FILE_BYTES), "big.npy")


def test_an_image_over_max_pixels_is_refused_from_its_shape_before_its_pixels_are_read(monkeypatch):
    from eqlens.data import sandbox

    read = []
    real = sandbox.run_in_child

    def spy(*args, **kwargs):
        meta, pixels = real(*args, **kwargs)
        read.append(len(pixels))
        return meta, pixels

    monkeypatch.setattr(sandbox, "run_in_child", spy)
    with pytest.raises(DataError, match=r"big.npy: 64x64 is too large \(at most 32x32 pixels\)"):
        decode_untrusted(_npy(counts(1, 64)), "big.npy", max_pixels=32 * 32)
    assert read == []  # refused inside run_in_child: no pixel bytes reached the caller
    assert decode_untrusted(_npy(counts(1, 32)), "ok.npy", max_pixels=32 * 32).image.shape == (32, 32)
