"""Promise of eqlens.data.transforms.normalize_image: a constant image maps to zeros, also when float
rounding (an antialiased resize) has left it constant only up to a few ulps; real contrast is kept."""

from __future__ import annotations

import pytest
import torch

from eqlens.data.transforms import normalize_image, prepare_batch


@pytest.mark.parametrize("value", [1.0, 7.77, 12345.678, 0.1, 4.2e7])
@pytest.mark.parametrize(("native", "size"), [(150, 65), (150, 33), (101, 64), (2048, 65)])
def test_a_resized_constant_image_is_all_zeros_not_noise(value, native, size):
    image = torch.full((1, native, native), value, dtype=torch.float32)
    x = prepare_batch(image, size)
    assert x.shape == (1, 1, size, size)
    assert torch.count_nonzero(x) == 0


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_an_image_constant_up_to_one_ulp_is_all_zeros(dtype):
    base = torch.full((2, 33, 33), 3.0, dtype=dtype)
    jitter = torch.nextafter(base, torch.full_like(base, 4.0))
    image = torch.where(torch.rand(base.shape, generator=torch.Generator().manual_seed(0)) > 0.5, jitter, base)
    assert image.amax() > image.amin()
    out = normalize_image(image)
    assert out.dtype == dtype and torch.count_nonzero(out) == 0


@pytest.mark.parametrize(("dtype", "relative"), [(torch.float32, 1e-4), (torch.float64, 1e-10)])
def test_small_real_contrast_is_still_stretched_to_the_full_range(dtype, relative):
    image = torch.full((1, 20, 20), 1000.0, dtype=dtype)
    image[0, 5:9, 5:9] += 1000.0 * relative
    out = normalize_image(image)
    assert out.min() == 0 and out.max() == 1
    assert torch.count_nonzero(out) == 16


def test_a_zero_image_and_an_ordinary_image_are_unchanged_in_meaning():
    assert torch.count_nonzero(normalize_image(torch.zeros(1, 16, 16))) == 0
    image = torch.arange(256, dtype=torch.float32).reshape(1, 16, 16) - 100
    torch.testing.assert_close(normalize_image(image), (image + 100) / 255)
