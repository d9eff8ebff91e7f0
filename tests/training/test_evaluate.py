"""Promises of evaluation: stable JSON keys, a folder pipeline from `eqlens train` to `eqlens evaluate`,
and a clear DataError when the data's classes are not the checkpoint's."""

import json

import pytest

from eqlens.cli import main
from eqlens.core.run_config import TrainConfig
from eqlens.errors import DataError
from eqlens.evaluation.checkpoint import evaluate_checkpoint
from eqlens.evaluation.classification import evaluate_model
from eqlens.training import train

from .conftest import TINY_CNN

REQUIRED_KEYS = {"n", "accuracy", "auc_macro", "per_class_auc", "confusion", "invariance_error", "roc",
                 "predictions", "class_names", "robustness", "loss"}


def test_evaluate_model_reports_every_documented_key_as_strict_json(splits):
    result = train(TrainConfig(model="cnn", data="blobs", epochs=1, batch_size=8, robustness_size=0,
                               model_kwargs=TINY_CNN), data=splits)
    report = evaluate_model(result.model, splits.test, splits.class_names, robustness_size=4)
    assert REQUIRED_KEYS <= report.keys()
    from eqlens.core.jsonio import dumps

    parsed = json.loads(dumps(report))
    assert parsed["n"] == len(parsed["predictions"]) == 16
    assert set(parsed["per_class_auc"]) == set(parsed["roc"]) == {"no_sub", "sub"}
    row = parsed["predictions"][0]
    assert row.keys() == {"source", "label", "predicted", "probabilities", "correct"}
    assert sum(row["probabilities"]) == pytest.approx(1.0)
    assert sum(map(sum, parsed["confusion"])) == 16
    assert parsed["robustness"]["num_images"] == 4 and parsed["invariance_error"] >= 0


def test_cli_train_then_evaluate_a_deeplense_folder_writes_the_json_report(lens_folder, tmp_path, capsys):
    ckpt, report_path = tmp_path / "ckpt", tmp_path / "report.json"
    assert main(["train", "--model", "cnn", "--data", str(lens_folder), "--epochs", "1", "--batch-size", "4",
                 "--out", str(ckpt), "--device", "cpu", "--robustness-size", "0"]) == 0
    assert main(["evaluate", str(ckpt), "--json", str(report_path), "--robustness-size", "0"]) == 0
    report = json.loads(report_path.read_text())
    assert REQUIRED_KEYS <= report.keys()
    card = json.loads((ckpt / "model_card.json").read_text())
    # Without --data the test split carved out of the folder at training time is re-created exactly.
    assert report["n"] == card["data"]["sizes"]["test"]
    assert all(p["source"]["file"].startswith(str(lens_folder)) for p in report["predictions"])
    assert report["accuracy"] == pytest.approx(card["metrics"]["test"]["accuracy"])


def test_a_folder_with_other_classes_raises_a_clear_data_error(lens_folder, tmp_path):
    ckpt = tmp_path / "ckpt"
    train(TrainConfig(model="cnn", data=str(lens_folder), epochs=1, batch_size=4, out=str(ckpt),
                      robustness_size=0, model_kwargs=TINY_CNN))
    (lens_folder / "sub").rename(lens_folder / "vortex")
    with pytest.raises(DataError, match="classes"):
        evaluate_checkpoint(ckpt, str(lens_folder), robustness_size=0)
    assert main(["evaluate", str(ckpt), "--data", str(lens_folder)]) == 2  # one line on stderr, no traceback


def test_a_plain_models_report_names_no_group_and_measures_the_c4_quarter_turns_as_its_probe(lens_folder, tmp_path,
                                                                                              capsys):
    ckpt = tmp_path / "ckpt"
    train(TrainConfig(model="cnn", data=str(lens_folder), epochs=1, batch_size=4, out=str(ckpt),
                      robustness_size=0, model_kwargs=TINY_CNN))
    report = evaluate_checkpoint(ckpt, robustness_size=4, device="cpu")
    assert report["checkpoint"]["group"] is None and report["checkpoint"]["probe_group"] == "C4"
    assert report["robustness"]["group"] == "C4" and set(report["robustness"]["invariance_error"]["per_element"]) == {
        "rot 90 deg", "rot 180 deg", "rot 270 deg"}
    assert main(["evaluate", str(ckpt), "--robustness-size", "4", "--device", "cpu"]) == 0
    assert "invariance error" in (out := capsys.readouterr().out) and "(probe group C4)" in out


def test_the_robustness_images_of_a_folder_listed_class_by_class_hold_every_class(tmp_path):
    """The robustness report takes a subset of the test split: on a folder (files listed class by class)
    its first files would all be of one class."""
    import numpy as np
    import torch
    from torch.utils.data import Subset

    from eqlens.data.deeplense import DeepLenseFolderDataset
    from eqlens.data.splits import class_balanced_indices
    from eqlens.evaluation.classification import robustness_images
    from eqlens.models import create

    rng = np.random.default_rng(0)
    for name in ("no", "sphere", "vort"):
        (tmp_path / "lenses" / name).mkdir(parents=True)
        for i in range(5):
            np.save(tmp_path / "lenses" / name / f"{name}_{i}.npy", rng.random((24, 24)).astype(np.float32))
    folder = DeepLenseFolderDataset(tmp_path / "lenses", image_size=24)
    model = create("cnn", num_classes=3, image_size=24, **TINY_CNN)
    _, y = robustness_images(model, folder, 6, torch.device("cpu"), mask=True)
    assert sorted(y.tolist()) == [0, 0, 1, 1, 2, 2]
    carved = Subset(folder, [12, 13, 14, 5, 6, 0])  # a carved split: labels 2, 2, 2, 1, 1, 0
    assert sorted(folder.labels[carved.indices[i]] for i in class_balanced_indices(carved, 3)) == [0, 1, 2]


def test_the_printed_data_line_says_how_subhalos_and_vortex_were_drawn():
    from eqlens.commands.evaluate import _data_line
    from eqlens.simulation import get_config

    def line(name):
        return _data_line({"spec": name, "simulation_config": get_config(name).to_dict()})

    assert "subhalos: truncated NFW" in line("model_i_tnfw") and "vortex:" in line("model_i_tnfw")
    assert "subhalos: point masses" in line("model_i") and "100 point masses" in line("model_i")
    assert line("binary").startswith("binary") and _data_line({"spec": "some/folder"}) == "some/folder"


def test_evaluate_anatomy_bins_the_errors_by_scene_and_refuses_a_folder(lens_folder, tmp_path, capsys):
    from pathlib import Path

    shipped = Path(__file__).resolve().parents[2] / "checkpoints" / "binary_gcnn"
    report_path = tmp_path / "report.json"
    assert main(["evaluate", str(shipped), "--size", "40", "--robustness-size", "0", "--anatomy",
                 "--json", str(report_path)]) == 0
    out = capsys.readouterr().out
    assert "error rate by quantile of the scene" in out and "mass_near_ring" in out
    rows = json.loads(report_path.read_text())["anatomy"]
    sub = [r for r in rows if r["class_name"] == "sub" and r["feature"] == "mass_near_ring"]
    assert sum(r["lenses"] for r in sub) == 20  # every lens of the class, in one bin each
    wrong = sum(p["label"] == 1 and not p["correct"] for p in json.loads(report_path.read_text())["predictions"])
    assert sum(r["errors"] for r in sub) == wrong
    ckpt = tmp_path / "ckpt"
    train(TrainConfig(model="cnn", data=str(lens_folder), epochs=1, batch_size=4, out=str(ckpt),
                      robustness_size=0, model_kwargs=TINY_CNN))
    with pytest.raises(DataError, match="scene"):
        evaluate_checkpoint(ckpt, robustness_size=0, anatomy=True)
