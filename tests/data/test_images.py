"""Promises of eqlens.data.images: every supported file decodes to the exact float64 [H, W] image it holds,
from a path, bytes or an upload object, and every bad input raises DataError naming the file."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from eqlens.data.images import LUMINANCE_WEIGHTS, MAX_FILE_BYTES, decode_image, load_image
from eqlens.errors import DataError

from .layouts import axion_pair, counts, save


def _picture_bytes(array: np.ndarray, fmt: str, **kw) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format=fmt, **kw)
    return buffer.getvalue()


def _npy_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=array.dtype.hasobject)
    return buffer.getvalue()


# ------------------------------------------------------------------------------------------ .npy layouts


def test_integer_counts_npy_decodes_to_the_same_values_in_float64(tmp_path):
    image = counts(3)
    decoded = decode_image(save(tmp_path / "cdm_sim_1.npy", image))
    assert decoded.layout == "npy_image" and decoded.image.dtype == np.float64
    np.testing.assert_array_equal(decoded.image, image)


def test_channel_first_normalised_npy_is_squeezed_to_h_w(tmp_path):
    image = np.random.default_rng(0).random((1, 20, 24)).astype(np.float32)
    decoded = decode_image(save(tmp_path / "no_1.npy", image))
    assert decoded.layout == "npy_channel"
    np.testing.assert_array_equal(decoded.image, image[0])


@pytest.mark.parametrize("mass", [1e-23, np.float64(3.2e-24), 7])
def test_axion_pair_gives_its_image_and_its_mass(tmp_path, mass):
    image = counts(5)
    decoded = decode_image(save(tmp_path / "axion_sim_1.npy", axion_pair(image, mass)))
    assert decoded.layout == "npy_axion_pair" and decoded.axion_mass == float(mass)
    np.testing.assert_array_equal(decoded.image, image)


def test_flat_array_is_a_row_major_square_image(tmp_path):
    image = counts(1)
    decoded = decode_image(save(tmp_path / "flat.npy", image.ravel()))
    assert decoded.layout == "npy_flat" and decoded.label is None
    np.testing.assert_array_equal(decoded.image, image)


def test_flat_array_with_one_extra_value_carries_that_value_as_its_label(tmp_path):
    image = counts(2).astype(np.float64)
    decoded = decode_image(save(tmp_path / "flat.npy", np.append(image.ravel(), 2.0)))
    assert decoded.layout == "npy_flat_labeled" and decoded.label == 2
    np.testing.assert_array_equal(decoded.image, image)


# ------------------------------------------------------------------------------------------ pictures, FITS


@pytest.mark.parametrize(("dtype", "fmt"), [(np.uint8, "PNG"), (np.uint16, "PNG"), (np.uint16, "TIFF")])
def test_lossless_gray_pictures_round_trip_exactly_at_their_bit_depth(tmp_path, dtype, fmt):
    image = (np.arange(20 * 22).reshape(20, 22) * (1 if dtype == np.uint8 else 131) % np.iinfo(dtype).max).astype(dtype)
    path = tmp_path / f"lens.{fmt.lower()}"
    path.write_bytes(_picture_bytes(image, fmt))
    decoded = decode_image(path)
    assert decoded.layout == fmt.lower()
    np.testing.assert_array_equal(decoded.image, image.astype(np.float64))


def test_float_tiff_round_trips_exactly():
    image = np.random.default_rng(1).random((20, 20)).astype(np.float32)
    np.testing.assert_array_equal(load_image(_picture_bytes(image, "TIFF"), "lens.tif"), image)


def test_jpeg_round_trips_within_compression_error():
    y, x = np.mgrid[0:32, 0:32]
    image = (127 + 100 * np.sin(x / 6.0) * np.cos(y / 7.0)).astype(np.uint8)
    decoded = decode_image(_picture_bytes(image, "JPEG", quality=95), "lens.jpg")
    assert decoded.layout == "jpeg"
    assert np.abs(decoded.image - image).mean() < 2.0


def test_rgb_picture_becomes_bt601_luminance_without_rounding():
    rgb = np.random.default_rng(2).integers(0, 256, size=(20, 20, 3), dtype=np.uint8)
    expected = rgb.astype(np.float64) @ np.asarray(LUMINANCE_WEIGHTS)
    np.testing.assert_allclose(load_image(_picture_bytes(rgb, "PNG"), "rgb.png"), expected, rtol=0, atol=1e-12)


def test_rgba_picture_ignores_alpha():
    rgba = np.random.default_rng(3).integers(0, 256, size=(20, 20, 4), dtype=np.uint8)
    opaque = rgba.copy()
    opaque[..., 3] = 255
    np.testing.assert_array_equal(load_image(_picture_bytes(rgba, "PNG")), load_image(_picture_bytes(opaque, "PNG")))


def test_fits_takes_the_first_image_hdu_with_data_and_squeezes_a_single_plane_cube(tmp_path):
    from astropy.io import fits

    image = np.random.default_rng(4).normal(size=(20, 21))
    hdus = fits.HDUList([fits.PrimaryHDU(), fits.ImageHDU(image[None]), fits.ImageHDU(np.zeros((20, 20)))])
    path = tmp_path / "lens.fits"
    hdus.writeto(path)
    decoded = decode_image(path)
    assert decoded.layout == "fits"
    np.testing.assert_array_equal(decoded.image, image)


def test_fits_cube_with_several_planes_raises_naming_the_file(tmp_path):
    from astropy.io import fits

    path = tmp_path / "cube.fits"
    fits.PrimaryHDU(np.zeros((3, 20, 20))).writeto(path)
    with pytest.raises(DataError, match="cube.fits"):
        load_image(path)


def test_path_bytes_and_upload_object_decode_identically(tmp_path):
    image = counts(6)
    path = save(tmp_path / "lens.npy", image)
    upload = io.BytesIO(path.read_bytes())
    upload.name = "upload.npy"
    for source in (path, str(path), path.read_bytes(), upload):
        np.testing.assert_array_equal(load_image(source, "lens.npy"), image)


def test_an_upload_object_decodes_again_after_being_read():
    image = counts(8)
    upload = io.BytesIO(_npy_bytes(image))
    upload.name = "upload.npy"
    load_image(upload)
    np.testing.assert_array_equal(load_image(upload), image)


def test_content_decides_the_format_not_the_file_name():
    image = counts(7)
    np.testing.assert_array_equal(load_image(_npy_bytes(image), "misnamed.png"), image)


# ------------------------------------------------------------------------------------------ bad input


BAD_NPY = {
    "nan": np.where(np.eye(20) > 0, np.nan, 1.0),
    "inf": np.where(np.eye(20) > 0, np.inf, 1.0),
    "three_d": np.zeros((2, 20, 20)),
    "flat_not_square": np.zeros(401 + 5),
    "too_small": np.zeros((8, 8)),
    "too_large": np.zeros((16, 4097), dtype=np.uint8),
    "complex": np.zeros((20, 20), dtype=np.complex64),
    "strings": np.full((20, 20), "x"),
    "scalar": np.array(3.0),
    "negative_label": np.append(np.zeros(400), -1.0),
    "fractional_label": np.append(np.zeros(400), 0.5),
}


@pytest.mark.parametrize("case", sorted(BAD_NPY))
def test_bad_npy_content_raises_data_error_naming_the_file(tmp_path, case):
    path = save(tmp_path / f"bad_{case}.npy", BAD_NPY[case])
    with pytest.raises(DataError, match=f"bad_{case}.npy"):
        load_image(path)


@pytest.mark.parametrize(
    "content",
    [b"just some text, not an image", b"\x93NUMPY\x01\x00garbage", b"\x89PNG\r\n\x1a\n" + b"\x00" * 40, b""],
    ids=["text", "corrupt_npy", "truncated_png", "empty"],
)
def test_non_image_upload_raises_data_error_naming_the_upload(content):
    with pytest.raises(DataError, match="upload.bin"):
        load_image(content, "upload.bin")


def test_missing_file_raises_naming_it(tmp_path):
    with pytest.raises(DataError, match="nothere.npy"):
        load_image(tmp_path / "nothere.npy")


def test_file_over_the_default_size_cap_is_refused_before_reading(tmp_path):
    path = tmp_path / "huge.npy"
    with open(path, "wb") as f:  # sparse: no 64 MB is written
        f.truncate(MAX_FILE_BYTES + 1)
    with pytest.raises(DataError, match="huge.npy.*limit"):
        load_image(path)


def test_bytes_over_a_given_cap_are_refused():
    with pytest.raises(DataError, match="big.npy.*limit"):
        load_image(_npy_bytes(counts(0)), "big.npy", max_bytes=1000)


def test_multi_frame_tiff_is_refused():
    frames = [Image.fromarray(np.full((20, 20), v, np.uint8)) for v in (1, 2)]
    buffer = io.BytesIO()
    frames[0].save(buffer, format="TIFF", save_all=True, append_images=frames[1:])
    with pytest.raises(DataError, match="stack.tif.*frames"):
        load_image(buffer.getvalue(), "stack.tif")


def test_oversized_picture_is_refused_from_its_header():
    with pytest.raises(DataError, match="wide.png"):
        load_image(_picture_bytes(np.zeros((16, 4100), np.uint8), "PNG"), "wide.png")
