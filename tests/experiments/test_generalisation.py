"""Promises of train-once-evaluate-many: one row per (model, shift) with accuracy and AUC, the
orientation shift measured as the analysis package measures it, and exact invariance showing up
as equal accuracy at every quarter turn."""

from __future__ import annotations

import math

import pytest
import torch

from eqlens.analysis.equivariance import accuracy_over_angles
from eqlens.checkpoint import load_checkpoint
from eqlens.errors import DataError
from eqlens.experiments.generalisation import (
    evaluate_shifts,
    markdown_report,
    render_test_split,
    score_orientation,
    shift_table,
    training_config,
    twin_table,
)
from eqlens.experiments.shifts import SHIFTS
from eqlens.groups import circular_mask
from eqlens.simulation import get_config

from .conftest import SIZE, TINY


@pytest.fixture(scope="module")
def report(checkpoints):
    return evaluate_shifts([checkpoints["cnn"], checkpoints["gcnn"]], "all", size=6, device="cpu", angles=[0, 90])


def test_the_table_has_one_row_per_model_and_shift_with_accuracy_and_auc(report):
    skipped = {s["shift"] for s in report["skipped"]}
    assert skipped == {"model_i"}  # TINY already has Model I's lens population
    shifts = ["none", *(s for s in SHIFTS if s not in skipped)]
    assert [(r["model"], r["shift"]) for r in report["rows"]] == [(m, s) for m in ("cnn", "gcnn") for s in shifts]
    for r in report["rows"]:
        assert r["n"] == 6 and 0 <= r["accuracy"] <= 1 and (math.isnan(r["auc_macro"]) or 0 <= r["auc_macro"] <= 1)
        assert r["augment"] is False
    assert all(r["accuracy_drop"] == 0 for r in report["rows"] if r["shift"] == "none")
    table = shift_table(report["rows"]).splitlines()
    assert len(table) == 2 + 2 * len(shifts)
    assert any(line.startswith("| gcnn | C4 | no | model_ii_resized | 6 |") for line in table)


def test_the_markdown_report_holds_the_orientation_and_twin_tables(report):
    text = markdown_report(report)
    assert "### Orientation (angles 0, 90 deg)" in text and "### Equivariant model against its plain twin" in text
    twins = twin_table(report["rows"]).splitlines()
    assert [line.split(" | ")[:2] for line in twins[2:]] == [["| orientation", "gcnn (augmented: no)"],
                                                             ["| orientation_sky", "gcnn (augmented: no)"]]
    assert all("| cnn (augmented: no) |" in line for line in twins[2:])


def test_sky_orientation_at_zero_degrees_scores_the_unshifted_test_split(report):
    rows = {(r["model"], r["shift"]): r for r in report["rows"]}
    for model in ("cnn", "gcnn"):
        sky, upright = rows[(model, "orientation_sky")], rows[(model, "none")]
        assert sky["angles_deg"] == [0.0, 90.0] and sky["accuracy_by_angle"][0] == pytest.approx(upright["accuracy"])
    # gcnn is exactly invariant to quarter turns, but a turned sky has new noise and an odd grid's centre pixel
    # on the vortex line: its two angles need not agree exactly, the image-rotation ones must.
    assert len(set(rows[("gcnn", "orientation")]["accuracy_by_angle"])) == 1


def test_orientation_accuracy_per_angle_is_accuracy_over_angles(checkpoints):
    model, _ = load_checkpoint(checkpoints["cnn"])
    x, y = render_test_split(TINY, 6, SIZE, 0, "cpu").batch(range(6))
    angles = [0, 30, 90]
    scores = score_orientation(model, x, y, angles)
    expected, worst = accuracy_over_angles(model, x, y, angles)
    assert scores["accuracy_by_angle"] == pytest.approx(expected.tolist())
    assert scores["worst_angle_accuracy"] == pytest.approx(worst)
    assert scores["accuracy"] == pytest.approx(float(expected.mean()))


class QuadrantReader(torch.nn.Module):
    """Logit k = mean brightness of image quadrant k (k < 3): a model that knows where "up" is."""

    def forward(self, x):
        h = x.shape[-1] // 2
        quadrants = [x[..., :h, :h], x[..., :h, h:], x[..., h:, h:]]
        return torch.stack([q.mean(dim=(-3, -2, -1)) for q in quadrants], dim=1)


def test_orientation_keeps_an_invariant_model_right_at_every_quarter_turn_and_catches_one_that_is_not(checkpoints):
    model, card = load_checkpoint(checkpoints["gcnn"])
    assert card.training["config"]["augment"] is False
    x = torch.rand(12, 1, SIZE, SIZE, generator=torch.Generator().manual_seed(0))
    for net, invariant in ((model, True), (QuadrantReader(), False)):
        with torch.no_grad():  # labels = the upright (masked) predictions: upright accuracy is 1 by construction
            y = net(x * circular_mask(SIZE, SIZE)).argmax(1)
        scores = score_orientation(net, x, y, [0, 90, 180, 270])
        assert scores["accuracy_by_angle"][0] == 1.0
        assert (scores["worst_angle_accuracy"] == 1.0) is invariant


def test_the_training_config_comes_from_the_card_and_a_folder_needs_a_base():
    # a card that records no config was rendered with the line vortex of its day
    assert training_config({"spec": "model_i"}) == get_config("model_i_line")
    assert training_config({"spec": "x", "simulation_config": TINY.to_dict()}) == TINY
    with pytest.raises(DataError, match="base"):
        training_config({"spec": "/data/Model_I", "kind": "folder"})
    assert training_config({"spec": "/data/Model_I"}, base="model_i") == get_config("model_i")
