"""Promises of evaluation: stable JSON keys, a folder pipeline from `eqlens train` to `eqlens evaluate`,
and a clear DataError when the data's classes are not the checkpoint's."""

import json

import pytest

from eqlens.cli import main
from eqlens.errors import DataError
from eqlens.training import TrainConfig, evaluate_model, train
from eqlens.training.evaluate import evaluate_checkpoint

from .conftest import TINY_CNN

REQUIRED_KEYS = {"n", "accuracy", "auc_macro", "per_class_auc", "confusion", "invariance_error", "roc",
                 "predictions", "class_names", "robustness", "loss"}


def test_evaluate_model_reports_every_documented_key_as_strict_json(splits):
    result = train(TrainConfig(model="cnn", data="blobs", epochs=1, batch_size=8, robustness_size=0,
                               model_kwargs=TINY_CNN), data=splits)
    report = evaluate_model(result.model, splits.test, splits.class_names, robustness_size=4)
    assert REQUIRED_KEYS <= report.keys()
    from eqlens.training.jsonio import dumps

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
