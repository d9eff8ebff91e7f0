"""Promise: a FITS file's headers are read before any of its data, and an image too large to accept
(ZNAXISn of a tile-compressed one included) is refused without decoding: a small compressed file cannot
expand into gigabytes. Good FITS files, compressed or not, still decode exactly."""

from __future__ import annotations

import io
import time
import tracemalloc

import numpy as np
import pytest

from eqlens.data.images import MAX_SIDE, decode_image, load_image
from eqlens.errors import DataError

fits = pytest.importorskip("astropy.io.fits")


def _bytes(*hdus) -> bytes:
    buffer = io.BytesIO()
    fits.HDUList([fits.PrimaryHDU(), *hdus]).writeto(buffer)
    return buffer.getvalue()


def _peak_while(func) -> int:
    tracemalloc.start()
    try:
        func()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_a_compressed_bomb_is_refused_before_decoding_with_little_memory():
    # 43 KB on disk, 6000 x 6000 pixels (288 MB as float64) once decoded; the old code decoded it first.
    side = 6000
    data = _bytes(fits.CompImageHDU(np.zeros((side, side), np.uint8), compression_type="GZIP_1",
                                    tile_shape=(1000, side)))
    assert len(data) < 100_000

    def refuse():
        start = time.monotonic()
        with pytest.raises(DataError, match=rf"bomb\.fits: HDU 1 holds a {side}x{side} image.*refused before decoding"):
            load_image(data, "bomb.fits")
        assert time.monotonic() - start < 2

    assert _peak_while(refuse) < 4 << 20


def test_a_header_claiming_a_huge_image_without_its_data_is_refused():
    header = fits.Header({"SIMPLE": True, "BITPIX": -64, "NAXIS": 2, "NAXIS1": 40000, "NAXIS2": 40000})
    data = header.tostring().encode() + bytes(2880)
    with pytest.raises(DataError, match="claims.fits: HDU 0 announces 12800000000 bytes"):
        load_image(data, "claims.fits")


def test_an_edited_compressed_header_is_refused_from_its_znaxis():
    good = _bytes(fits.CompImageHDU(np.zeros((32, 32), np.int16)))
    bad = good.replace(b"ZNAXIS1 =                   32", b"ZNAXIS1 =               400000", 1)
    assert bad != good
    with pytest.raises(DataError, match="refused before decoding"):
        load_image(bad, "edited.fits")


def test_huge_compression_tiles_are_refused():
    good = _bytes(fits.CompImageHDU(np.zeros((32, 32), np.int16)))
    bad = good.replace(b"ZTILE1  =                   32", b"ZTILE1  =             90000000", 1)
    assert bad != good
    with pytest.raises(DataError, match="compression tiles"):
        load_image(bad, "tiles.fits")


def test_a_cube_with_several_planes_is_refused_before_decoding():
    with pytest.raises(DataError, match="cube.fits: HDU 1 holds a 3x64x64 image"):
        load_image(_bytes(fits.ImageHDU(np.zeros((3, 64, 64), np.float32))), "cube.fits")


def test_images_at_the_side_limit_are_accepted():
    assert MAX_SIDE == 4096
    decoded = decode_image(_bytes(fits.CompImageHDU(np.zeros((16, MAX_SIDE), np.int16))), "wide.fits")
    assert decoded.image.shape == (16, MAX_SIDE)


@pytest.mark.parametrize("compressed", [False, True])
def test_good_files_still_decode_exactly(compressed):
    image = np.random.default_rng(0).integers(0, 1000, (24, 20)).astype(np.int32)
    hdu = fits.CompImageHDU(image) if compressed else fits.ImageHDU(image)
    decoded = decode_image(_bytes(fits.ImageHDU(np.zeros((0,), np.float32)), hdu), "lens.fits")
    np.testing.assert_array_equal(decoded.image, image)


def test_a_truncated_header_is_refused():
    with pytest.raises(DataError, match="no END card"):
        load_image(_bytes(fits.ImageHDU(np.zeros((20, 20))))[:100], "short.fits")


def test_a_huge_tfields_is_refused_before_astropy_loops_over_it():
    # astropy's header translation loops over range(TFIELDS) ten times: 3 million took minutes, 1e12 forever.
    good = _bytes(fits.CompImageHDU(np.zeros((32, 32), np.int16)))
    at = good.index(b"TFIELDS =")
    bad = good[:at] + f"{'TFIELDS':<8}= {3_000_000:>20}".ljust(80).encode() + good[at + 80 :]
    start = time.monotonic()
    with pytest.raises(DataError, match="TFIELDS"):
        load_image(bad, "fields.fits")
    assert time.monotonic() - start < 2
