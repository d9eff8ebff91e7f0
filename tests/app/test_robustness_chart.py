"""Promises of Misclassified's robustness chart: it shows a checkpoint's record from docs/robustness.json as
bars of accuracy with their s.e. and a chance line, titled with the question it answers, and says how to
make a record when there is none."""

from __future__ import annotations

from app import robustness_chart


def _chart():
    rows = [{"shift": "none", "n": 300, "accuracy": 0.95, "accuracy_se": 0.0126, "description": "unshifted"},
            {"shift": "theta_e_1pct", "n": 300, "accuracy": 0.88, "accuracy_se": 0.0188, "description": "ring"},
            {"shift": "noise_x3", "n": 300, "accuracy": 0.34, "accuracy_se": 0.0273, "description": "noise",
             "input_note": "resized"}]
    return {"rows": rows, "skipped": [], "chance": 1 / 3, "population": "model_i", "size": 300}


def test_the_chart_has_one_bar_per_shift_with_its_standard_error_and_a_chance_line():
    fig = robustness_chart.robustness_figure(_chart(), "model_i_flagship")
    bars, chance = fig.data
    assert list(bars.x) == ["none", "theta_e_1pct", "noise_x3"] and list(bars.y) == [0.95, 0.88, 0.34]
    assert list(bars.error_y.array) == [0.0126, 0.0188, 0.0273]
    assert list(chance.y) == [1 / 3, 1 / 3] and "chance" in chance.name
    assert "stop working" in fig.layout.title.text and "model_i_flagship" in fig.layout.title.text
    # a shift within 2 s.e. of chance is drawn apart from those above it
    assert bars.marker.color[1] != bars.marker.color[2] and "resized" in bars.customdata[2][2]


def test_only_checkpoints_have_a_record_name():
    assert robustness_chart.checkpoint_name("ckpt:/somewhere/checkpoints/model_i_flagship") == "model_i_flagship"
    assert robustness_chart.checkpoint_name("untrained:gcnn") is None
