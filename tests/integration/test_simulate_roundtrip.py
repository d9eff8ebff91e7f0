"""`eqlens simulate` writes the DeepLense layout, and the DeepLense loader reads it back exactly."""

import dataclasses

import numpy as np
import torch

from eqlens.cli import main
from eqlens.data import DeepLenseFolderDataset, detect_layout
from eqlens.data.simulated import SimulatedLensDataset, folder_stream_seed
from eqlens.simulation import LensSimulator, get_config, write_deeplense_folder


def test_simulated_folder_reads_back_exactly_through_the_deeplense_loader(tmp_path):
    small = dataclasses.replace(get_config("model_i"), image_size=24)
    out = tmp_path / "Model_I"
    counts = write_deeplense_folder(small, out, n_per_class=3, seed=5, progress=False)
    assert counts == {"axion": 3, "cdm": 3, "no_sub": 3}
    assert detect_layout(out) == "deeplense_model"
    raw = DeepLenseFolderDataset(out, normalize=False)
    assert raw.class_names == ("axion", "cdm", "no_sub")
    rendered = LensSimulator(small).simulate(5, range(9))
    for i, path in enumerate(raw.files):
        x, label = raw[i]
        assert raw.class_names[label] == path.parent.name
        n = int(path.stem.rsplit("_", 1)[1])
        index = n * 3 + label  # the writer's documented numbering
        assert torch.equal(x[0], rendered.images[index])
        if path.parent.name == "axion":
            stored_mass = np.load(path, allow_pickle=True)[1]
            assert raw.extra(i)["axion_mass"] == stored_mass
            assert np.isclose(np.log10(stored_mass), float(rendered.truth.log10_axion_mass[index]))


def test_cli_simulate_writes_the_documented_layout(tmp_path):
    out = tmp_path / "binary"
    assert main(["simulate", "--config", "binary", "--n-per-class", "2", "--out", str(out), "--seed", "3",
                 "--no-progress"]) == 0
    names = sorted(p.relative_to(out).as_posix() for p in out.rglob("*.npy"))
    assert names == ["no_sub/no_sub_sim_0.npy", "no_sub/no_sub_sim_1.npy", "sub/sub_sim_0.npy", "sub/sub_sim_1.npy"]
    data = DeepLenseFolderDataset(out, normalize=False)
    rendered = LensSimulator(get_config("binary")).simulate(folder_stream_seed(3), range(4))
    for i, path in enumerate(data.files):
        x, label = data[i]
        n = int(path.stem.rsplit("_", 1)[1])
        assert torch.equal(x[0], rendered.images[n * 2 + label])


def test_cli_reports_an_unknown_config_as_one_clear_error(tmp_path, capsys):
    assert main(["simulate", "--config", "nope", "--n-per-class", "1", "--out", str(tmp_path)]) == 2
    assert "unknown simulation config" in capsys.readouterr().err


def test_a_default_simulated_folder_shares_no_lens_with_training_and_a_split_can_be_written_on_purpose(tmp_path):
    from eqlens.data.transforms import prepare_batch

    out = tmp_path / "folder"
    assert main(["simulate", "--config", "binary", "--n-per-class", "2", "--out", str(out), "--no-progress"]) == 0
    files = DeepLenseFolderDataset(out, normalize=False)
    train = SimulatedLensDataset("binary", "train", 4, seed=0)
    for i in range(len(files)):
        x, label = files[i]
        n = int(files.files[i].stem.rsplit("_", 1)[1])
        assert not torch.equal(prepare_batch(x[None], None)[0], train[n * 2 + label][0])  # was bit-identical
    test_out = tmp_path / "test_split"
    assert main(["simulate", "--config", "binary", "--n-per-class", "2", "--out", str(test_out), "--split", "test",
                 "--data-seed", "0", "--no-progress"]) == 0
    files, test = DeepLenseFolderDataset(test_out), SimulatedLensDataset("binary", "test", 4, seed=0)
    for i in range(len(files)):
        x, label = files[i]
        n = int(files.files[i].stem.rsplit("_", 1)[1])
        assert torch.allclose(x, test[n * 2 + label][0], atol=1e-6) and test[n * 2 + label][1] == label
