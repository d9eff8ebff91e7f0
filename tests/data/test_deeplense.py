"""Promises of eqlens.data.deeplense: every DeepLense layout reads back exactly, class indices come from
names (never from creation or glob order), files are in natural order, and bad folders raise DataError
naming the folder or file."""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from PIL import Image

from eqlens.data import prepare_batch
from eqlens.data.deeplense import (
    DeepLenseFolderDataset,
    class_order,
    detect_layout,
    list_splits,
    load_deeplense_folder,
    natural_key,
)
from eqlens.errors import DataError

from .layouts import counts, save, write_common_test, write_flat_labeled, write_model_i

# ------------------------------------------------------------------------------------------ layouts


def test_model_i_layout_reads_back_exactly_with_canonical_labels_and_axion_masses(tmp_path):
    written = write_model_i(tmp_path / "Model_I")
    raw = DeepLenseFolderDataset(tmp_path / "Model_I", normalize=False)
    assert raw.layout == "deeplense_model" and raw.class_names == ("axion", "cdm", "no_sub")
    assert sorted(raw.files) == sorted(written)
    for i, path in enumerate(raw.files):
        image, mass = written[path]
        item, label = raw[i]
        assert item.dtype == torch.float32 and item.shape == (1, 20, 20)
        assert torch.equal(item[0], torch.from_numpy(image).float())
        assert raw.class_names[label] == path.parent.name
        assert raw.extra(i) == ({} if mass is None else {"axion_mass": mass})


def test_items_are_the_one_normalisation_of_the_file_image(tmp_path):
    written = write_model_i(tmp_path / "Model_I", per_class=1, size=24)
    dataset = DeepLenseFolderDataset(tmp_path / "Model_I", image_size=17)
    for i, path in enumerate(dataset.files):
        item, _ = dataset[i]
        expected = prepare_batch(torch.from_numpy(written[path][0]).float()[None], 17)[0]
        assert item.shape == (1, 17, 17) and torch.equal(item, expected)
        assert item.min() == 0 and item.max() == 1


def test_common_test_layout_with_train_and_val_splits_reads_channel_first_images(tmp_path):
    written = write_common_test(tmp_path / "dataset")
    assert detect_layout(tmp_path / "dataset") == "splits"
    assert list_splits(tmp_path / "dataset") == ("train", "val")
    for split in ("train", "val"):
        dataset = DeepLenseFolderDataset(tmp_path / "dataset", normalize=False, split=split)
        assert dataset.root == tmp_path / "dataset" / split and dataset.layout == "common_test"
        assert dataset.class_names == ("no", "sphere", "vort") and len(dataset) == 6
        for i, path in enumerate(dataset.files):
            assert torch.equal(dataset[i][0][0], torch.from_numpy(written[path]))


def test_model_i_and_model_i_test_folders_are_the_train_and_test_splits(tmp_path):
    write_model_i(tmp_path / "Model_I", per_class=2)
    write_model_i(tmp_path / "Model_I_test", per_class=1)
    train = DeepLenseFolderDataset(tmp_path, split="train")
    test = DeepLenseFolderDataset(tmp_path, split="test")
    by_name = DeepLenseFolderDataset(tmp_path, split="Model_I_test")
    assert train.root.name == "Model_I" and len(train) == 6
    assert test.root.name == by_name.root.name == "Model_I_test" and len(test) == 3
    assert train.class_names == test.class_names


@pytest.mark.parametrize("extension", ["png", "npy"])
def test_binary_sub_no_sub_folders_of_pictures_or_npy(tmp_path, extension):
    images = {}
    for name in ("sub", "no_sub"):
        for k in range(2):
            image = (counts(k + (10 if name == "sub" else 0)) % 256).astype(np.uint8)
            path = tmp_path / "lenses" / name / f"lens_{k}.{extension}"
            path.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(image).save(path) if extension == "png" else np.save(path, image)
            images[path] = image
    dataset = DeepLenseFolderDataset(tmp_path / "lenses", normalize=False)
    assert dataset.layout == "binary" and dataset.class_names == ("no_sub", "sub")
    assert dataset.labels == [0, 0, 1, 1]
    for i, path in enumerate(dataset.files):
        assert torch.equal(dataset[i][0][0], torch.from_numpy(images[path]).float())


def test_loose_flat_files_take_their_appended_labels(tmp_path):
    written = write_flat_labeled(tmp_path / "flat", labels=(2, 0, 1, 0))
    dataset = DeepLenseFolderDataset(tmp_path / "flat", normalize=False)
    assert detect_layout(tmp_path / "flat") == dataset.layout == "flat_labeled"
    assert dataset.class_names == ("0", "1", "2") and dataset.labels == [2, 0, 1, 0]
    for i, path in enumerate(dataset.files):
        image, label = written[path]
        assert torch.equal(dataset[i][0][0], torch.from_numpy(image).float())
        assert dataset.extra(i) == {"appended_label": label}
    named = DeepLenseFolderDataset(tmp_path / "flat", classes=("no_sub", "cdm", "axion"))
    assert named.class_names == ("no_sub", "cdm", "axion") and named.labels == dataset.labels


def test_other_class_names_are_sorted_naturally_whatever_the_creation_order(tmp_path):
    for name in ("type_10", "type_2", "Alpha"):
        save(tmp_path / "data" / name / "a.npy", counts(0))
    dataset = DeepLenseFolderDataset(tmp_path / "data")
    assert dataset.layout == "class_folders"
    assert dataset.class_names == ("Alpha", "type_2", "type_10")


@pytest.mark.parametrize("order", [("axion", "cdm", "no_sub"), ("no_sub", "cdm", "axion"), ("cdm", "axion", "no_sub")])
def test_class_indices_do_not_depend_on_folder_creation_order(tmp_path, order):
    for k, name in enumerate(order):
        save(tmp_path / name / f"{name}_sim_0.npy", counts(k))
    dataset = DeepLenseFolderDataset(tmp_path)
    assert dataset.class_names == ("axion", "cdm", "no_sub")
    assert [dataset.file_path(i).parent.name for i in range(3)] == ["axion", "cdm", "no_sub"]


def test_files_are_in_natural_order_not_creation_or_lexical_order(tmp_path):
    for k in (10, 2, 1, 33, 3):
        save(tmp_path / "data" / "cdm" / f"cdm_sim_{k}.npy", counts(k))
    dataset = DeepLenseFolderDataset(tmp_path / "data")
    assert [p.name for p in dataset.files] == [f"cdm_sim_{k}.npy" for k in (1, 2, 3, 10, 33)]


@given(st.lists(st.integers(min_value=0, max_value=10**6), unique=True, min_size=1, max_size=20))
def test_natural_key_orders_numbered_names_by_number(numbers):
    names = [f"sim_{n}.npy" for n in numbers]
    assert sorted(names, key=natural_key) == [f"sim_{n}.npy" for n in sorted(numbers)]


def test_known_class_sets_take_their_canonical_order_in_any_input_order():
    assert class_order(["vort", "no", "sphere"]) == ("no", "sphere", "vort")
    assert class_order(["sub", "no_sub"]) == ("no_sub", "sub")
    assert class_order(["no_sub", "axion", "cdm"]) == ("axion", "cdm", "no_sub")


def test_classes_argument_chooses_and_orders_class_folders(tmp_path):
    write_model_i(tmp_path, per_class=1)
    dataset = DeepLenseFolderDataset(tmp_path, classes=["no_sub", "axion"])
    assert dataset.class_names == ("no_sub", "axion")
    pairs = [(p.parent.name, label) for p, label in zip(dataset.files, dataset.labels, strict=True)]
    assert pairs == [("no_sub", 0), ("axion", 1)]


def test_hidden_entries_are_ignored_and_reported(tmp_path):
    write_model_i(tmp_path, per_class=1)
    (tmp_path / "cdm" / ".DS_Store").write_bytes(b"x")
    (tmp_path / "__MACOSX").mkdir()
    dataset = DeepLenseFolderDataset(tmp_path)
    assert len(dataset) == 3 and len(dataset.ignored) == 2
    assert "ignored 2 hidden" in dataset.describe()


def test_describe_names_layout_classes_counts_and_a_sample_file(tmp_path):
    write_model_i(tmp_path / "Model_I", per_class=2)
    text = DeepLenseFolderDataset(tmp_path / "Model_I", image_size=16).describe()
    expected = ("deeplense_model", "0: axion, 2", "2: no_sub, 2", "npy_axion_pair, 20x20", "axion mass 1e-24", "16x16")
    for fragment in expected:
        assert fragment in text, fragment


def test_validate_returns_the_image_shapes_of_a_good_folder(tmp_path):
    write_model_i(tmp_path, per_class=2)
    assert load_deeplense_folder(tmp_path, validate=True).validate() == {(20, 20): 6}


def test_dataset_batches_through_a_dataloader(tmp_path):
    write_model_i(tmp_path, per_class=2, size=24)
    loader = torch.utils.data.DataLoader(DeepLenseFolderDataset(tmp_path, image_size=16), batch_size=4)
    images, labels = next(iter(loader))
    assert images.shape == (4, 1, 16, 16) and labels.tolist() == [0, 0, 1, 1]


# ------------------------------------------------------------------------------------------ bad folders


def test_missing_folder_raises_naming_it(tmp_path):
    with pytest.raises(DataError, match="nowhere.*no such folder"):
        DeepLenseFolderDataset(tmp_path / "nowhere")


def test_empty_folder_raises_naming_it(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="empty.*is empty"):
        DeepLenseFolderDataset(tmp_path / "empty")


def test_folder_of_unrecognised_files_is_an_unknown_layout(tmp_path):
    (tmp_path / "notes" / "a").mkdir(parents=True)
    (tmp_path / "notes" / "a" / "readme.txt").write_text("hi")
    with pytest.raises(DataError, match="notes.*unknown layout"):
        detect_layout(tmp_path / "notes")


def test_class_folder_without_data_files_raises_naming_it(tmp_path):
    write_model_i(tmp_path, per_class=1)
    (tmp_path / "extra_class").mkdir()
    with pytest.raises(DataError, match="extra_class.*no data files"):
        DeepLenseFolderDataset(tmp_path)


def test_unsupported_file_in_a_class_folder_raises_naming_it(tmp_path):
    write_model_i(tmp_path, per_class=1)
    (tmp_path / "cdm" / "labels.csv").write_text("1,2")
    with pytest.raises(DataError, match="labels.csv"):
        DeepLenseFolderDataset(tmp_path)


def test_one_bad_file_raises_when_read_and_validate_names_it_up_front(tmp_path):
    write_model_i(tmp_path, per_class=2)
    save(tmp_path / "cdm" / "cdm_sim_1.npy", np.full((20, 20), np.nan))
    dataset = DeepLenseFolderDataset(tmp_path)
    bad = [p.name for p in dataset.files].index("cdm_sim_1.npy")
    dataset[bad - 1]  # its neighbours still read
    with pytest.raises(DataError, match="cdm_sim_1.npy.*NaN"):
        dataset[bad]
    with pytest.raises(DataError, match="(?s)1 problem.*cdm_sim_1.npy"):
        dataset.validate()


def test_validate_without_image_size_reports_mixed_sizes(tmp_path):
    save(tmp_path / "a" / "x.npy", counts(0, 20))
    save(tmp_path / "b" / "y.npy", counts(0, 24))
    with pytest.raises(DataError, match="(?s)differ in size.*x.npy 20x20.*y.npy 24x24"):
        DeepLenseFolderDataset(tmp_path).validate()
    assert DeepLenseFolderDataset(tmp_path, image_size=16).validate() == {(20, 20): 1, (24, 24): 1}


def test_split_root_without_split_raises_listing_the_splits(tmp_path):
    write_common_test(tmp_path)
    with pytest.raises(DataError, match=r"\['train', 'val'\].*split="):
        DeepLenseFolderDataset(tmp_path)


def test_unknown_split_raises_listing_the_splits(tmp_path):
    write_common_test(tmp_path)
    with pytest.raises(DataError, match=r"no split 'test'.*\['train', 'val'\]"):
        DeepLenseFolderDataset(tmp_path, split="test")


def test_split_on_a_folder_of_class_folders_raises(tmp_path):
    write_model_i(tmp_path, per_class=1)
    with pytest.raises(DataError, match="leave split unset"):
        DeepLenseFolderDataset(tmp_path, split="train")


def test_loose_files_without_appended_labels_raise_naming_the_file(tmp_path):
    save(tmp_path / "image_1.npy", counts(0))
    with pytest.raises(DataError, match="image_1.npy.*class folders"):
        DeepLenseFolderDataset(tmp_path)


def test_classes_naming_a_missing_folder_raise_naming_it(tmp_path):
    write_model_i(tmp_path, per_class=1)
    with pytest.raises(DataError, match="vortex.*no such class folder"):
        DeepLenseFolderDataset(tmp_path, classes=["axion", "vortex"])


def test_too_few_class_names_for_the_appended_labels_raise(tmp_path):
    write_flat_labeled(tmp_path, labels=(0, 2))
    with pytest.raises(DataError, match="3 distinct names"):
        DeepLenseFolderDataset(tmp_path, classes=("a", "b"))


def test_a_file_given_as_root_raises(tmp_path):
    path = save(tmp_path / "x.npy", counts(0))
    with pytest.raises(DataError, match=f"{os.path.basename(path)}.*not a folder"):
        DeepLenseFolderDataset(path)
