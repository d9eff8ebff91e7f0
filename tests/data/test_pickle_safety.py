"""Promise: an object .npy is unpickled only when it is the DeepLense [image, mass] pair of plain numpy
arrays and numbers; any other pickle is refused with DataError before any of its code runs."""

from __future__ import annotations

import os
import pickle

import numpy as np
import pytest

from eqlens.data.deeplense import DeepLenseFolderDataset
from eqlens.data.images import load_image
from eqlens.errors import DataError

from .layouts import axion_pair, counts, save


class _Payload:
    """Unpickling this runs ``os.system(touch <marker>)``."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


class _MarkerList(list):
    """A list subclass: unpickling it needs a non-numpy global."""


def _assert_refused_without_running(path, marker):
    with pytest.raises(DataError, match=path.name):
        load_image(path)
    assert not marker.exists(), "the pickled payload ran"


def test_the_payload_really_runs_under_a_plain_unpickler(tmp_path):
    # Guards the tests below: the marker appears when the payload is unpickled naively.
    marker = tmp_path / "ran_plain"
    pickle.loads(pickle.dumps(_Payload(marker)))
    assert marker.exists()


def test_payload_inside_a_pair_shaped_object_array_is_refused_without_running(tmp_path):
    marker = tmp_path / "ran_pair"
    path = save(tmp_path / "axion_sim_1.npy", axion_pair(_Payload(marker), 1e-23))
    _assert_refused_without_running(path, marker)


def test_payload_saved_as_a_bare_object_is_refused_from_the_header(tmp_path):
    marker = tmp_path / "ran_bare"
    path = tmp_path / "evil.npy"
    np.save(path, _Payload(marker), allow_pickle=True)
    _assert_refused_without_running(path, marker)


def test_payload_as_the_mass_is_refused_without_running(tmp_path):
    marker = tmp_path / "ran_mass"
    path = save(tmp_path / "axion_sim_2.npy", axion_pair(counts(0), _Payload(marker)))
    _assert_refused_without_running(path, marker)


def test_payload_in_a_dataset_folder_is_refused_when_read_and_names_the_file(tmp_path):
    marker = tmp_path / "ran_dataset"
    save(tmp_path / "data" / "cdm" / "cdm_sim_1.npy", counts(1))
    save(tmp_path / "data" / "axion" / "axion_sim_1.npy", axion_pair(_Payload(marker), 1e-23))
    dataset = DeepLenseFolderDataset(tmp_path / "data")
    with pytest.raises(DataError, match="axion_sim_1.npy"):
        dataset[dataset.class_names.index("axion")]
    with pytest.raises(DataError, match="axion_sim_1.npy"):
        dataset.validate()
    assert not marker.exists()


@pytest.mark.parametrize(
    ("case", "first", "second"),
    [
        ("mass_is_text", counts(0), "1e-23"),
        ("mass_is_nan", counts(0), float("nan")),
        ("mass_is_bool", counts(0), True),
        ("image_is_list", [[1.0] * 20] * 20, 1e-23),
        ("image_is_object_array", np.array([None] * 4, dtype=object), 1e-23),
        ("list_subclass", _MarkerList([1.0]), 1e-23),
    ],
)
def test_pair_shaped_arrays_of_the_wrong_content_are_refused(tmp_path, case, first, second):
    path = save(tmp_path / f"{case}.npy", axion_pair(first, second))
    with pytest.raises(DataError, match=f"{case}.npy"):
        load_image(path)


@pytest.mark.parametrize("length", [1, 3])
def test_object_arrays_of_another_length_are_refused(tmp_path, length):
    content = np.empty(length, dtype=object)
    content[:] = [counts(0)] + [1e-23] * (length - 1)
    path = save(tmp_path / f"length_{length}.npy", content)
    with pytest.raises(DataError, match=f"length_{length}.npy.*refusing"):
        load_image(path)
