"""The normalised confusion matrix and the reliability diagram (expected calibration error)."""

from __future__ import annotations

import numpy as np
import pytest

from eqlens.evaluation.metrics import normalised_confusion, reliability


def test_each_row_of_the_normalised_confusion_sums_to_one_and_an_empty_class_stays_nan():
    shares = normalised_confusion([[8, 2, 0], [1, 1, 2], [0, 0, 0]])
    np.testing.assert_allclose(shares[:2].sum(axis=1), 1.0)
    np.testing.assert_allclose(shares[0], [0.8, 0.2, 0.0])
    assert np.isnan(shares[2]).all()


def test_a_calibrated_model_has_no_calibration_error():
    # 10 images at confidence 0.8 of which 8 are right, 10 at 0.6 of which 6 are right
    probs = np.array([[0.8, 0.2]] * 10 + [[0.4, 0.6]] * 10)
    labels = np.array([0] * 8 + [1] * 2 + [1] * 6 + [0] * 4)
    report = reliability(probs, labels, bins=10)
    assert report["ece"] == pytest.approx(0.0, abs=1e-12)
    assert sum(report["count"]) == 20
    assert report["count"][7] == 10 and report["count"][5] == 10  # (0.7, 0.8] and (0.5, 0.6]
    assert report["accuracy"][7] == pytest.approx(0.8)
    assert np.isnan(report["accuracy"][0])  # empty bins carry no accuracy


def test_an_overconfident_model_has_its_gap_as_calibration_error():
    probs = np.array([[0.99, 0.01]] * 10)  # always sure, right half the time
    labels = np.array([0, 1] * 5)
    report = reliability(probs, labels, bins=5)
    assert report["ece"] == pytest.approx(0.49)
    assert report["mce"] == pytest.approx(0.49)
    assert report["count"][-1] == 10


def test_confidence_of_exactly_one_falls_in_the_last_bin_and_a_bad_shape_is_refused():
    assert reliability(np.array([[1.0, 0.0]]), np.array([0]), bins=4)["count"] == [0, 0, 0, 1]
    with pytest.raises(ValueError):
        reliability(np.ones((3, 2)) / 2, np.zeros(2))
