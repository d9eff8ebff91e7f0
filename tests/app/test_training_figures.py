"""The training charts: validation values at their epochs only, the legend clear of the tick labels, an
accuracy axis in percent on 0..1, and the run history's smoothing and log scale."""

from __future__ import annotations

import math

import plotly.graph_objects as go
import pytest

from app import figures
from app.jobs import TrainingJob
from eqlens.training.reporting import Progress


def two_epoch_history() -> list[dict]:
    """The job's history of 2 epochs of 4 steps, each epoch ending with its validation."""
    job = TrainingJob(config=None)
    for epoch, (val_loss, val_acc) in enumerate(((0.9, 0.4), (0.5, 0.7)), start=1):
        for step in range(1, 5):
            job._progress(Progress("train", epoch, 2, step, 4, 1.0 / (epoch + step), 0.5, 10.0))
        job._progress(Progress("val", epoch, 2, 0, 0, 0.6, 0.6, 10.0, val={"loss": val_loss, "accuracy": val_acc}))
    return job.snapshot().history


def traces(fig) -> dict:
    return {t["name"]: t for t in fig.to_dict()["data"]}


def test_validation_is_drawn_at_each_epochs_end_and_never_carried_over_training_steps():
    history = two_epoch_history()
    assert not any("val_loss" in h for h in history if h.get("phase") == "train")
    by_name = traces(figures.training_curves(history))
    assert list(by_name["val loss"]["x"]) == [1.0, 2.0] and list(by_name["val loss"]["y"]) == [0.9, 0.5]
    assert list(by_name["val accuracy"]["x"]) == [1.0, 2.0] and list(by_name["val accuracy"]["y"]) == [0.4, 0.7]
    assert "markers" in by_name["val loss"]["mode"]
    train_x = list(by_name["train loss"]["x"])
    assert train_x == sorted(train_x) and train_x[0] == pytest.approx(0.25)  # a quarter into epoch 1


def test_the_legend_sits_above_the_plot_and_accuracy_reads_in_percent_on_0_to_1():
    fig = figures.training_curves(two_epoch_history())
    layout = fig.to_dict()["layout"]
    assert layout["legend"]["y"] >= 1 and layout["legend"]["yanchor"] == "bottom"
    accuracy = layout["yaxis2"]
    assert accuracy["range"][0] == 0 and accuracy["range"][1] == pytest.approx(1.02)
    assert accuracy["tickformat"] == ".0%" and accuracy["dtick"] == 0.2 and accuracy["tick0"] == 0
    go.Figure(fig.to_dict())  # every property is one plotly knows


def test_smoothing_is_a_debiased_moving_average_that_keeps_gaps():
    assert figures.smooth([1.0, 2.0, 3.0], 0.0) == [1.0, 2.0, 3.0]
    assert figures.smooth([2.0, 2.0, None, 2.0], 0.9) == [pytest.approx(2.0), pytest.approx(2.0), None,
                                                          pytest.approx(2.0)]
    smoothed = figures.smooth([0.0, 10.0], 0.5)
    assert smoothed[0] == 0.0 and 0 < smoothed[1] < 10
    assert figures.smooth([math.nan], 0.5) == [None]


def test_the_run_history_overlays_runs_one_colour_each_with_log_loss():
    card_history = [{"epoch": e, "train_loss": 1.0 / e, "val_loss": 1.2 / e, "train_accuracy": 0.5 + e / 10,
                     "val_accuracy": 0.4 + e / 10} for e in (1, 2, 3)]
    fig = figures.run_history({"a": card_history, "b": card_history[:2]}, smoothing=0.3, log_loss=True)
    data = fig.to_dict()["data"]
    assert {t["name"] for t in data} == {"a", "b"} and sum(t.get("showlegend", True) for t in data) == 2
    colours = {name: {t["line"]["color"] for t in data if t["name"] == name} for name in ("a", "b")}
    assert len(colours["a"]) == len(colours["b"]) == 1 and colours["a"] != colours["b"]
    layout = fig.to_dict()["layout"]
    assert layout["yaxis"]["type"] == "log" and layout["yaxis2"]["tickformat"] == ".0%"
    go.Figure(fig.to_dict())


def test_a_regression_history_shows_its_mae_instead_of_accuracy():
    history = [{"epoch": 1, "train_loss": 1.0, "val_loss": 1.1, "train_mae": 0.3, "val_mae": 0.35}]
    fig = figures.run_history({"reg": history})
    assert fig.to_dict()["layout"]["yaxis2"]["title"]["text"] == "mae"


def test_a_regression_job_charts_its_mae_beside_the_loss():
    job = TrainingJob(config=None)
    job._progress(Progress("train", 1, 1, 1, 2, 0.9, math.nan, 8.0, mae=0.4))
    job._progress(Progress("val", 1, 1, 0, 0, 0.8, math.nan, 8.0, val={"loss": 0.7, "mae": 0.3}, mae=0.35))
    by_name = traces(figures.training_curves(job.snapshot().history))
    assert list(by_name["val mae"]["x"]) == [1.0] and list(by_name["val mae"]["y"]) == [0.3]
    assert "train mae" in by_name and "train accuracy" not in by_name
