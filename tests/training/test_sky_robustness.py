"""Promises of the turned-sky robustness in evaluation reports: simulated test lenses are turned as
scenes and rendered again at every angle (no resampling), the 0-deg entry is the upright evaluation
of the same lenses, files on disk (which cannot be re-rendered) report None, and the bench table
carries the turned-sky worst angle beside the resampled one."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from eqlens.core.tasks import TargetScaler
from eqlens.data.regression import SimulatedRegressionDataset
from eqlens.data.simulated import SimulatedLensDataset
from eqlens.data.transforms import apply_circular_mask
from eqlens.evaluation.classification import evaluate_model, sky_robustness, turned_outputs
from eqlens.evaluation.regression import evaluate_regression
from eqlens.models import create
from eqlens.simulation import get_config

SIZE = 17
TINY = dataclasses.replace(get_config("model_i"), name="tiny_model_i", image_size=SIZE, pixel_scale=150 * 0.05 / SIZE)
ANGLES = (0.0, 30.0, 90.0)


def _cnn(num_classes: int):
    torch.manual_seed(0)
    return create("cnn", num_classes=num_classes, image_size=SIZE, widths=[4, 8]).eval()


def test_a_simulated_test_set_reports_accuracy_over_turned_scenes_with_the_upright_one_at_0_deg():
    test = SimulatedLensDataset(TINY, split="test", size=9)
    model = _cnn(3)
    report = evaluate_model(model, test, TINY.class_names, robustness_size=6, angles=ANGLES)
    sky = report["robustness"]["sky"]
    assert sky["angles_deg"] == list(ANGLES) and sky["num_images"] == 6
    upright = np.mean([p["correct"] for p in report["predictions"][:6]])
    assert sky["accuracy_by_angle"][0] == pytest.approx(upright)
    assert sky["worst_angle_accuracy"] == min(sky["accuracy_by_angle"])
    assert 0.0 <= sky["orbit_consistency"] <= 1.0


def test_turned_outputs_at_a_quarter_turn_are_new_renderings_not_the_upright_picture_turned():
    test = SimulatedLensDataset(TINY, split="test", size=4)
    model = _cnn(3)
    outputs, labels = turned_outputs(model, torch.utils.data.Subset(test, [3, 1]), 2, [0.0, 90.0])
    assert outputs.shape == (2, 2, 3) and labels.tolist() == [test[3][1], test[1][1]]
    with torch.no_grad():
        upright = model(apply_circular_mask(test.batch([3, 1])[0]))
        turned = model(apply_circular_mask(test.turned_batch([3, 1], 90.0)[0]))
    assert torch.allclose(outputs[0], upright, atol=1e-6) and torch.allclose(outputs[1], turned, atol=1e-6)


def test_files_on_disk_cannot_be_turned_as_scenes_and_report_none(splits):
    model = create("cnn", num_classes=2, image_size=24, widths=[4, 8]).eval()
    assert sky_robustness(model, splits.test, 4) is None
    report = evaluate_model(model, splits.test, splits.class_names, robustness_size=4, angles=ANGLES)
    assert report["robustness"]["sky"] is None and report["robustness"]["worst_angle_accuracy"] is not None


def test_a_regression_report_gives_the_mae_over_turned_scenes_with_the_upright_mae_at_0_deg():
    test = SimulatedRegressionDataset("axion_mass", TINY, split="test", size=5)
    model = _cnn(1)
    scaler = TargetScaler(mean=-22.5, std=0.3)
    report = evaluate_regression(model, test, "axion_mass", scaler, robustness_size=4, angles=ANGLES)
    sky = report["robustness"]["sky"]
    upright = np.mean([abs(p["predicted"] - p["true"]) for p in report["pairs"][:4]])
    assert sky["angles_deg"] == list(ANGLES) and sky["mae_by_angle"][0] == pytest.approx(upright, rel=1e-6)
    assert sky["worst_angle_mae"] == max(sky["mae_by_angle"]) and sky["orbit_std"] >= 0
