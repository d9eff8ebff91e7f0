"""Promises of eqlens.evaluation.metrics: AUC, ROC and confusion against hand computations."""

import json
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from eqlens.core.jsonio import dumps
from eqlens.evaluation.metrics import (
    accuracy,
    binary_auc,
    classification_report,
    confusion_matrix,
    macro_auc,
    one_vs_rest_auc,
    roc_curve,
    softmax,
)


def test_a_perfect_ranking_has_auc_one():
    assert binary_auc([0.1, 0.2, 0.3, 0.9], [0, 0, 1, 1]) == 1.0


def test_a_reversed_ranking_has_auc_zero():
    assert binary_auc([0.9, 0.8, 0.2, 0.1], [0, 0, 1, 1]) == 0.0


def test_auc_of_a_small_case_matches_the_hand_count():
    # Positive 0.35 beats one of two negatives, positive 0.8 beats both: 3 of 4 pairs.
    assert binary_auc([0.1, 0.4, 0.35, 0.8], [0, 0, 1, 1]) == pytest.approx(0.75)


def test_a_tied_pair_counts_one_half():
    # Pairs (pos 0.5 vs neg 0.5): 1/2, (pos 0.5 vs neg 0.1): 1, (pos 0.9 vs both): 2 -> 3.5 / 4.
    assert binary_auc([0.5, 0.5, 0.1, 0.9], [1, 0, 0, 1]) == pytest.approx(0.875)


def test_auc_is_nan_when_one_class_is_absent():
    assert math.isnan(binary_auc([0.1, 0.2], [1, 1]))


def test_roc_curve_of_a_small_case_matches_the_hand_computation():
    fpr, tpr, thr = roc_curve([0.1, 0.4, 0.35, 0.8], [0, 0, 1, 1])
    np.testing.assert_allclose(fpr, [0, 0, 0.5, 0.5, 1])
    np.testing.assert_allclose(tpr, [0, 0.5, 0.5, 1, 1])
    np.testing.assert_allclose(thr, [np.inf, 0.8, 0.4, 0.35, 0.1])


def test_tied_scores_enter_the_roc_curve_together():
    fpr, tpr, _ = roc_curve([0.5, 0.5, 0.1], [1, 0, 0])
    np.testing.assert_allclose(fpr, [0, 0.5, 1])
    np.testing.assert_allclose(tpr, [0, 1, 1])


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 6), st.booleans()), min_size=2, max_size=30))
def test_auc_is_the_pairwise_win_rate_and_the_area_under_the_roc_curve(pairs):
    scores = np.array([s for s, _ in pairs], dtype=float)
    positive = np.array([p for _, p in pairs])
    pos, neg = scores[positive], scores[~positive]
    if len(pos) == 0 or len(neg) == 0:
        assert math.isnan(binary_auc(scores, positive))
        return
    wins = (pos[:, None] > neg[None, :]).sum() + 0.5 * (pos[:, None] == neg[None, :]).sum()
    expected = wins / (len(pos) * len(neg))
    assert binary_auc(scores, positive) == pytest.approx(expected)
    fpr, tpr, _ = roc_curve(scores, positive)
    assert np.sum(np.diff(fpr) * (tpr[1:] + tpr[:-1]) / 2) == pytest.approx(expected)


def test_macro_one_vs_rest_auc_averages_the_per_class_aucs_of_softmax_scores():
    logits = np.log(np.array([[0.7, 0.2, 0.1], [0.2, 0.5, 0.3], [0.1, 0.3, 0.6], [0.3, 0.4, 0.3]]))
    labels = np.array([0, 1, 2, 2])
    probs = softmax(logits)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0)
    np.testing.assert_allclose(probs, np.exp(logits))
    # The AUCs are taken on the exact probabilities: softmax(log p) may round the two 0.3 of class 2
    # apart (1 ulp), turning the tie below into a win or a loss.
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    probs[3, 2] = probs[1, 2]
    # Class 0 scores 0.7, 0.2, 0.1, 0.3: its one positive (0.7) beats all 3 -> 1.
    # Class 1 scores 0.2, 0.5, 0.3, 0.4: positive 0.5 beats 0.2, 0.3, 0.4 -> 1.
    # Class 2 scores 0.1, 0.3, 0.6, 0.3: positives 0.6, 0.3 vs negatives 0.1, 0.3 -> (2 + 1.5) / 4.
    np.testing.assert_allclose(one_vs_rest_auc(probs, labels), [1.0, 1.0, 0.875])
    assert macro_auc(probs, labels) == pytest.approx((1 + 1 + 0.875) / 3)


def test_confusion_rows_are_true_classes_and_columns_predictions():
    cm = confusion_matrix([0, 0, 1, 2, 2], [0, 1, 1, 2, 0], 3)
    assert cm.tolist() == [[1, 1, 0], [0, 1, 0], [1, 0, 1]]
    assert accuracy(np.eye(3)[[0, 1, 1, 2, 0]], [0, 0, 1, 2, 2]) == pytest.approx(3 / 5)


def test_a_report_with_an_undefined_auc_is_strict_json_with_null():
    probs = softmax(np.array([[2.0, 0.0], [1.0, 0.0]]))
    report = classification_report(probs, [0, 0], ["no_sub", "sub"])
    parsed = json.loads(dumps(report))
    assert parsed["per_class_auc"] == {"no_sub": None, "sub": None}
    assert parsed["accuracy"] == 1.0 and parsed["confusion"] == [[2, 0], [0, 0]]
    assert parsed["roc"]["sub"]["thresholds"][0] is None  # +inf
