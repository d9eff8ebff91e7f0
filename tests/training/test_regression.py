"""Promises of the regression tasks (axion mass, total subhalo mass): targets are the simulator's truth,
training writes a card that turns outputs back into physical units, evaluation reports MSE / MAE / R^2
with predicted-vs-true pairs, and the invariant models predict the same mass for every exact rotation.

Tiny everywhere: ``model_ii`` scenes at 17x17, a handful of lenses, one or two epochs on the CPU."""

import json
import math

import numpy as np
import pytest
import torch

from eqlens import checkpoint as ck
from eqlens.checkpoint import load_checkpoint
from eqlens.checkpoint.predict import predict
from eqlens.cli import main
from eqlens.core.run_config import TrainConfig
from eqlens.core.tasks import TargetScaler
from eqlens.data.regression import FolderRegressionDataset, SimulatedRegressionDataset
from eqlens.data.simulated import SimulatedLensDataset, split_seed
from eqlens.data.transforms import apply_circular_mask
from eqlens.errors import CheckpointError, DataError, TrainingError
from eqlens.evaluation.metrics import regression_report
from eqlens.evaluation.regression import evaluate_regression
from eqlens.groups import act_on_image, get_group
from eqlens.simulation import write_deeplense_folder
from eqlens.training import train

SIZE = 17
GCNN_TINY = {"widths": [4, 4, 4, 4], "hidden": 8}
EQCVT_TINY = {"fields": 2, "head_hidden": 8}
REPORT_KEYS = {"task", "target", "unit", "n", "mse", "mae", "r2", "pairs", "invariance_error", "robustness", "loss"}


def _config(task, out=None, **kw):
    base = dict(model="gcnn", data="model_ii", task=task, out=None if out is None else str(out), epochs=1,
                batch_size=4, lr=3e-3, image_size=SIZE, train_size=8, val_size=4, test_size=4, robustness_size=0,
                device="cpu", model_kwargs=GCNN_TINY)
    return TrainConfig(**{**base, **kw})


# ------------------------------------------------------------------------------------------ targets


@pytest.mark.parametrize("task, class_name", [("axion_mass", "axion"), ("subhalo_mass", "cdm")])
def test_simulated_targets_are_the_truth_the_simulator_recorded_for_lenses_of_the_right_class(task, class_name):
    data = SimulatedRegressionDataset(task, "model_ii", split="val", size=5, seed=3, image_size=SIZE)
    classes = SimulatedLensDataset("model_ii", split="val", size=15, seed=3, image_size=SIZE)
    targets = data.regression_targets()
    for i in (0, 4):
        truth = classes.truth(3 * i + classes.class_names.index(class_name))
        assert truth["class_name"] == class_name and data.truth(i) == truth
        expected = truth["log10_axion_mass"] if task == "axion_mass" else math.log10(sum(truth["subhalo_masses"]))
        assert targets[i] == pytest.approx(expected, abs=1e-12)
    x, y = data.batch([1, 4])
    x_classes, _ = classes.batch([3 * 1 + classes.class_names.index(class_name), 3 * 4 + classes.class_names.index(
        class_name)])
    assert torch.equal(x, x_classes) and y.dtype == torch.float64
    assert np.array_equal(y.numpy(), targets[[1, 4]])


def test_a_deeplense_folder_gives_the_axion_masses_its_files_store_and_no_subhalo_masses(tmp_path):
    write_deeplense_folder("model_ii", tmp_path / "lenses", 3, seed=split_seed(0, "train"), progress=False)
    folder = FolderRegressionDataset(tmp_path / "lenses", "axion_mass", SIZE)
    simulated = SimulatedRegressionDataset("axion_mass", "model_ii", split="train", size=3, seed=0, image_size=SIZE)
    # the writer stores m in eV; the target is log10 m, the simulator's own number
    assert np.allclose(folder.regression_targets(), simulated.regression_targets(), atol=1e-12)
    assert torch.equal(folder[2][0], simulated[2][0]) and folder[2][1] == pytest.approx(simulated[2][1], abs=1e-12)
    with pytest.raises(DataError, match="store no subhalo mass"):
        FolderRegressionDataset(tmp_path / "lenses", "subhalo_mass")


def test_a_config_without_the_targets_class_raises_a_data_error():
    with pytest.raises(DataError, match="no lenses with vortex"):
        SimulatedRegressionDataset("axion_mass", "binary", size=2)


# ------------------------------------------------------------------------------------------ metrics


def test_mse_mae_and_r2_match_a_hand_computation():
    report = regression_report([1.5, 2.0, 2.0, 5.0], [1.0, 2.0, 3.0, 4.0])
    # residuals 0.5, 0, -1, 1; the true values spread sum (t - 2.5)^2 = 5
    assert report["n"] == 4
    assert report["mse"] == pytest.approx((0.25 + 0 + 1 + 1) / 4)
    assert report["mae"] == pytest.approx((0.5 + 0 + 1 + 1) / 4)
    assert report["r2"] == pytest.approx(1 - 2.25 / 5)
    assert math.isnan(regression_report([1.0, 2.0], [3.0, 3.0])["r2"])  # no spread to explain


def test_the_scaler_standardises_the_training_targets_and_decodes_back_exactly():
    values = np.array([-23.9, -22.1, -23.0, -22.5])
    scaler = TargetScaler.fit(values)
    z = scaler.encode(torch.tensor(values))
    assert float(z.mean()) == pytest.approx(0, abs=1e-6) and float(z.std(unbiased=False)) == pytest.approx(1, abs=1e-6)
    assert torch.allclose(scaler.decode(z), torch.tensor(values, dtype=torch.float64), atol=1e-6)


def test_a_regression_task_selects_on_validation_mse_and_refuses_classification_metrics():
    assert _config("axion_mass").select_on == "val_mse" and _config("classification").select_on == "val_accuracy"
    with pytest.raises(TrainingError, match="select_on"):
        _config("axion_mass", select_on="val_accuracy")
    with pytest.raises(TrainingError, match="task"):
        _config("dark_matter_colour")


# ------------------------------------------------------------------------------------------ training


@pytest.mark.parametrize("task", ["axion_mass", "subhalo_mass"])
def test_training_writes_a_card_with_the_task_and_the_training_targets_normalisation(task, tmp_path):
    result = train(_config(task, tmp_path / task, epochs=2))
    model, card = load_checkpoint(tmp_path / task)
    train_targets = SimulatedRegressionDataset(task, "model_ii", "train", 8, 0, SIZE).regression_targets()
    assert card.task == task and card.data["task"] == task
    assert card.scaler.to_dict() == pytest.approx({"mean": train_targets.mean(), "std": train_targets.std()})
    assert card.class_names == (card.task_record["target"],) and model.build_config["num_classes"] == 1
    val_mse = [h["val_mse"] for h in card.history]
    assert result.best_epoch == 1 + val_mse.index(min(val_mse))  # selection: lowest validation MSE
    test = card.metrics["test"]
    assert test["n"] == 4 and {"mse", "mae", "r2"} <= test.keys() and "pairs" not in test
    assert all(math.isfinite(h["train_loss"]) and h["train_mae"] >= 0 for h in card.history)


def test_a_regression_card_without_a_valid_normalisation_is_refused(tmp_path):
    train(_config("axion_mass", tmp_path / "run"))
    model, card = load_checkpoint(tmp_path / "run")
    broken = card.to_json()
    broken["task"]["normalisation"]["std"] = 0.0
    with pytest.raises(CheckpointError, match="normalisation"):
        ck.write_checkpoint(tmp_path / "broken", model, broken)
    older = card.to_json()
    del older["task"], older["class_names"][1:]
    older["model"]["build_config"]["num_classes"] = 1
    assert ck.ModelCard.from_json(older).task == "classification"  # cards older than tasks


def test_cli_trains_a_regression_and_evaluate_reports_mse_mae_r2_and_pairs_of_the_same_test_split(tmp_path):
    ckpt, report_path = tmp_path / "axion", tmp_path / "report.json"
    assert main(["train", "--task", "axion_mass", "--model", "gcnn", "--data", "model_ii", "--epochs", "1",
                 "--image-size", str(SIZE), "--train-size", "8", "--val-size", "4", "--test-size", "4",
                 "--batch-size", "4", "--device", "cpu", "--robustness-size", "0", "--out", str(ckpt)]) == 0
    assert main(["evaluate", str(ckpt), "--json", str(report_path), "--robustness-size", "2"]) == 0
    report = json.loads(report_path.read_text())
    card = json.loads((ckpt / ck.CARD_FILE).read_text())
    assert REPORT_KEYS <= report.keys() and report["task"] == "axion_mass" and report["n"] == 4
    assert report["mse"] == pytest.approx(card["metrics"]["test"]["mse"])  # the same held-out lenses
    true = np.array([p["true"] for p in report["pairs"]])
    predicted = np.array([p["predicted"] for p in report["pairs"]])
    test = SimulatedRegressionDataset("axion_mass", "model_ii", "test", 4, 0, SIZE)
    assert np.allclose(true, test.regression_targets(), atol=1e-12)
    assert report["mae"] == pytest.approx(np.abs(predicted - true).mean())
    assert report["r2"] == pytest.approx(1 - ((predicted - true) ** 2).sum() / ((true - true.mean()) ** 2).sum())
    model, card = load_checkpoint(ckpt)
    images = torch.stack([test[i][0] for i in range(4)])
    assert np.allclose(predict(model, card, images).values.numpy(), predicted, atol=1e-5)
    assert report["robustness"]["num_images"] == 2 and report["invariance_error"] >= 0


# ------------------------------------------------------------------------------------------ invariance


@pytest.mark.parametrize("model, group, kwargs", [("gcnn", "D4", GCNN_TINY), ("eqcvt_inv", "C4", EQCVT_TINY)])
def test_a_regression_checkpoint_of_an_invariant_model_predicts_the_same_mass_for_every_exact_element(
        model, group, kwargs, tmp_path):
    train(_config("axion_mass", tmp_path / model, model=model, group=group, model_kwargs=kwargs))
    net, card = load_checkpoint(tmp_path / model)
    scaler = card.scaler
    test = SimulatedRegressionDataset("axion_mass", "model_ii", "test", 3, 0, SIZE)
    x = apply_circular_mask(torch.stack([test[i][0] for i in range(3)]))
    with torch.no_grad():
        upright = net(x)
        for g in get_group(group).exact_elements:
            assert (net(act_on_image(x, g)) - upright).abs().max() < 1e-5, g
    report = evaluate_regression(net, test, "axion_mass", scaler, robustness_size=3, group=group)
    assert report["invariance_error"] < 1e-5
    assert len(report["robustness"]["invariance_error"]["per_element"]) == get_group(group).order - 1


def test_a_regression_bench_writes_one_table_of_r2_mae_and_invariance_over_seeds():
    from eqlens.experiments.model_comparison import format_table, run_comparison

    rows = run_comparison(["gcnn"], ["model_ii"], seeds=(0, 1), task="axion_mass", epochs=1, image_size=SIZE,
                     train_size=4, val_size=4, test_size=4, batch_size=4, device="cpu", robustness_size=2,
                     model_kwargs=GCNN_TINY)
    assert len(rows) == 1 and rows[0]["seeds"] == 2 and rows[0]["invariance_error"] < 1e-5
    header, rule, line = format_table(rows).splitlines()[:3]
    assert "test R^2" in header and "test acc" not in header
    assert header.count("|") == rule.count("|") == line.count("|") and line.startswith("| model_ii | gcnn | C4 |")
    assert "worst-angle MAE (turned sky)" in header and rows[0]["sky_worst_angle_mae"] >= 0
