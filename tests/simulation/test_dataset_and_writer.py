"""The simulated Dataset, the DeepLense folder writer, and ``eqlens simulate``."""

import dataclasses

import numpy as np
import pytest
import torch

from eqlens.cli import main
from eqlens.data.simulated import SimulatedLensDataset, split_seed
from eqlens.errors import EqlensError
from eqlens.simulation import get_config, write_deeplense_folder

SMALL = dataclasses.replace(get_config("model_i"), image_size=24, pixel_scale=0.2)


def test_items_are_normalised_single_channel_images_with_balanced_labels():
    ds = SimulatedLensDataset(SMALL, "train", size=6, seed=1)
    x, y = ds[4]
    assert x.shape == (1, 24, 24) and x.dtype == torch.float32 and y == 1
    assert float(x.min()) == 0.0 and float(x.max()) == 1.0
    assert [ds[i][1] for i in range(6)] == [0, 1, 2, 0, 1, 2]
    assert ds.class_names == ("axion", "cdm", "no_sub") and ds.num_classes == 3 and len(ds) == 6


def test_batch_renders_the_same_items_as_getitem_and_the_cache_changes_nothing():
    ds = SimulatedLensDataset(SMALL, "val", size=5, seed=2, image_size=16)
    x, y = ds.batch([3, 0, 4])
    assert x.shape == (3, 1, 16, 16) and y.tolist() == [0, 0, 1]
    assert torch.equal(x[1], ds[0][0]) and torch.equal(x[2], ds[4][0])
    cached = SimulatedLensDataset(SMALL, "val", size=5, seed=2, image_size=16, cache=True, cache_batch_size=2)
    assert torch.equal(cached.batch([3, 0, 4])[0], x)


def test_splits_draw_disjoint_streams():
    seeds = {split_seed(s, split) for s in range(50) for split in ("train", "val", "test")}
    assert len(seeds) == 150
    splits = ("train", "val", "test")
    images = [SimulatedLensDataset(SMALL, split, size=3, seed=0).batch([0, 1, 2])[0] for split in splits]
    for a in range(3):
        for b in range(a + 1, 3):
            assert not torch.equal(images[a], images[b])
    with pytest.raises(ValueError):
        SimulatedLensDataset(SMALL, "holdout", size=3)


def test_truth_of_an_item_matches_its_label_and_bad_indices_raise():
    ds = SimulatedLensDataset(SMALL, "test", size=3, seed=0)
    assert ds.truth(1)["class_name"] == "cdm" and len(ds.truth(1)["subhalo_masses"]) == 25
    with pytest.raises(IndexError):
        ds.batch([3])


def test_the_writer_produces_the_deeplense_layout(tmp_path):
    written = write_deeplense_folder(SMALL, tmp_path, n_per_class=2, seed=3, progress=False, batch_size=4)
    assert written == {"axion": 2, "cdm": 2, "no_sub": 2}
    for name in ("cdm", "no_sub"):
        image = np.load(tmp_path / name / f"{name}_sim_1.npy")
        assert image.shape == (24, 24) and image.dtype == np.float64
    record = np.load(tmp_path / "axion" / "axion_sim_0.npy", allow_pickle=True)
    assert record.dtype == object and record.shape == (2,)
    assert record[0].shape == (24, 24) and 1e-24 <= record[1] <= 1e-22


def test_eqlens_simulate_writes_files_and_reports_bad_input_as_errors(tmp_path, capsys):
    assert main(["simulate", "--config", "binary", "--n-per-class", "1", "--out", str(tmp_path / "b"),
                 "--no-progress", "--seed", "5"]) == 0  # fmt: skip
    assert sorted(p.name for p in (tmp_path / "b").iterdir()) == ["no_sub", "sub"]
    assert (tmp_path / "b" / "sub" / "sub_sim_0.npy").exists()
    assert main(["simulate", "--config", "model_x", "--n-per-class", "1", "--out", str(tmp_path / "c")]) == 2
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    assert main(["simulate", "--n-per-class", "1", "--out", str(blocker / "sub"), "--no-progress"]) == 2
    assert "error" in capsys.readouterr().err
    with pytest.raises(EqlensError):
        write_deeplense_folder(SMALL, blocker, 1, progress=False)
