"""The one input transform: native central crop, resize, min-max; InputSpec validates a card's input."""

import pytest
import torch

from eqlens.data.transforms import InputSpec, center_crop, prepare_batch
from eqlens.errors import DataError


def test_a_central_crop_takes_the_middle_window_of_the_native_pixels():
    x = torch.arange(150 * 150, dtype=torch.float32).reshape(1, 1, 150, 150)
    crop = center_crop(x, 81)
    assert crop.shape[-2:] == (81, 81)
    assert crop[0, 0, 0, 0] == x[0, 0, 34, 34] and crop[0, 0, -1, -1] == x[0, 0, 114, 114]
    assert torch.equal(center_crop(x, 80), x[..., 35:115, 35:115])  # even crop of an even frame: centred
    assert center_crop(x, None) is x


def test_a_crop_larger_than_the_image_is_a_data_error():
    with pytest.raises(DataError, match="does not fit"):
        center_crop(torch.zeros(1, 1, 64, 64), 65)


def test_prepare_batch_crops_before_resizing_and_normalises():
    x = torch.rand(2, 150, 150) * 100
    out = prepare_batch(x, 41, crop=81)
    assert out.shape == (2, 1, 41, 41) and out.amin() == 0 and out.amax() == 1
    assert torch.equal(prepare_batch(x, None, crop=81), prepare_batch(x[:, 34:115, 34:115], None))


@pytest.mark.parametrize("record", [
    {"image_size": "65"}, {"image_size": 10**9}, {"image_size": 65, "crop": -3}, {"image_size": 65, "crop": 2.5},
    {"image_size": 65, "circular_mask": "false"}, {"image_size": True},
])
def test_an_input_record_of_the_wrong_type_or_range_is_refused(record):
    with pytest.raises(DataError):
        InputSpec.from_record(record)


def test_an_input_spec_round_trips_and_masks():
    spec = InputSpec.from_record({"image_size": 33, "crop": 81, "circular_mask": True})
    assert InputSpec.from_record(spec.to_record()) == spec
    x = spec.prepare(torch.rand(1, 150, 150) + 1)
    assert x.shape == (1, 1, 33, 33) and x[0, 0, 0, 0] == 0
    assert InputSpec.from_record({"circular_mask": False}, fallback_size=65) == InputSpec(65, None, False)
    with pytest.raises(DataError, match="circular_mask"):  # the default is ModelCard's alone
        InputSpec.from_record({"image_size": 65})
