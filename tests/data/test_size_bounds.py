"""Issue 24, items 2 and 5: every integer a data file carries that would become a size is bounded, and every
decoder failure is a DataError naming the file: a loose flat .npy whose appended label is 1e30 (which made
the loose-files reader build range(1e30)) and an axion pair whose mass is 2**5000 (an OverflowError)."""

from __future__ import annotations

import time

import numpy as np
import pytest

from eqlens.data import decode_image
from eqlens.data.deeplense import DeepLenseFolderDataset
from eqlens.data.images import MAX_CLASSES
from eqlens.data.regression import FolderRegressionDataset
from eqlens.errors import DataError

from .layouts import axion_pair, counts, save, write_flat_labeled, write_model_i


def _flat_with_label(path, label: float):
    return save(path, np.concatenate([counts(0).astype(np.float64).ravel(), [label]]))


@pytest.mark.parametrize("label", [1e30, float(MAX_CLASSES), 2.0**63])
def test_a_loose_file_whose_label_is_no_class_index_is_refused_by_name_at_once(tmp_path, label):
    write_flat_labeled(tmp_path, labels=(0, 1))
    bad = _flat_with_label(tmp_path / "lens_9.npy", label)
    started = time.perf_counter()
    with pytest.raises(DataError, match=rf"{bad.name}: the appended label .* class"):
        DeepLenseFolderDataset(tmp_path)
    assert time.perf_counter() - started < 2.0


def test_the_largest_class_index_still_reads():
    flat = np.concatenate([counts(0).astype(np.float64).ravel(), [float(MAX_CLASSES - 1)]])
    import io

    buffer = io.BytesIO()
    np.save(buffer, flat)
    assert decode_image(buffer.getvalue(), "edge.npy").label == MAX_CLASSES - 1


def test_a_decoder_that_reports_such_a_label_is_refused_by_the_loose_files_reader_too(tmp_path, monkeypatch):
    from eqlens.data import deeplense
    from eqlens.data.images import DecodedImage

    write_flat_labeled(tmp_path, labels=(0, 1))
    monkeypatch.setattr(deeplense, "decode_image", lambda path: DecodedImage(counts(0).astype(float), str(path),
                                                                             "npy_flat_labeled", label=10**30))
    with pytest.raises(DataError, match=r"lens_0\.npy: the appended label .* not a class index below 1000"):
        DeepLenseFolderDataset(tmp_path)


def test_an_axion_pair_whose_mass_overflows_a_float_is_a_data_error_naming_the_file(tmp_path):
    path = save(tmp_path / "axion_huge.npy", axion_pair(counts(1), 2**5000))
    with pytest.raises(DataError, match=r"axion_huge\.npy: the second item .* not a finite number \(got an integer"):
        decode_image(path)


def test_the_regression_folder_reader_refuses_such_a_pair_with_a_data_error(tmp_path):
    write_model_i(tmp_path / "Model_I")
    save(tmp_path / "Model_I" / "axion" / "axion_sim_9.npy", axion_pair(counts(2), 2**5000))
    with pytest.raises(DataError, match=r"axion_sim_9\.npy"):
        FolderRegressionDataset(tmp_path / "Model_I", "axion_mass")


def test_any_other_decoder_exception_becomes_a_data_error_naming_the_file(monkeypatch):
    from eqlens.data import images

    def overflowing(data, name):
        raise OverflowError("cannot convert float infinity to integer")

    monkeypatch.setattr(images, "_decode_npy", overflowing)
    with pytest.raises(DataError, match=r"odd\.npy: cannot decode \(OverflowError"):
        decode_image(b"\x93NUMPY....", "odd.npy")
