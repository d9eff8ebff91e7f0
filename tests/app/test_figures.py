"""The figure builders: composed PNG grids with colour bars, overlays, truth markers, plotly figures."""

from __future__ import annotations

import numpy as np
import pytest

from app import figures


def test_a_grid_holds_every_panel_and_a_colour_bar():
    panels = [(f"g{i}", np.random.default_rng(i).random((9, 9))) for i in range(4)]
    with_bar = figures.image_grid(panels, cell=40)
    without = figures.image_grid([(t, figures.colorize(p, "magma", 0, 1)) for t, p in panels], cell=40)
    assert with_bar.width > without.width  # only scalar panels (or an overlay_range) get a bar
    assert figures.image_grid([("a", figures.colorize(panels[0][1], "magma", 0, 1))], cell=40,
                              overlay_range=(0.0, 1.0)).width > 40 + 12


def test_a_symmetric_scale_maps_zero_to_the_middle_colour():
    rgb = figures.colorize(np.array([[0.0]]), "RdBu_r", -2.0, 2.0)
    middle = figures.colorize(np.array([[0.5]]), "RdBu_r", 0.0, 1.0)
    assert np.array_equal(rgb, middle)


def test_an_overlay_keeps_the_image_size_and_marks_the_query():
    base, heat = np.random.default_rng(0).random((20, 20)), np.zeros((20, 20))
    heat[5, 5] = 1.0
    out = figures.mark_point(figures.overlay(base, heat), 10, 12)
    assert out.shape == (20, 20, 3) and out.dtype == np.uint8
    assert tuple(out[10, 12]) == (255, 255, 255)


def test_the_truth_overlay_draws_subhalos_and_the_vortex_where_the_pixels_say():
    image = np.zeros((50, 50))
    truth = {"subhalo_pixels": [[10.0, 40.0]], "subhalo_masses": [1e9], "vortex_pixels": [[0.0, 0.0], [49.0, 49.0]],
             "theta_E": 0.5, "pixel_scale": 0.05}
    drawn = np.asarray(figures.lens_with_truth(image, truth, size=100))
    plain = np.asarray(figures.lens_with_truth(image, None, size=100))
    changed = np.argwhere((drawn != plain).any(-1))
    assert len(changed) > 0
    near_subhalo = np.abs(changed - np.array([81, 21])).max(axis=1) <= 8  # row 40, col 10, zoom 2
    assert near_subhalo.any()


def test_the_confusion_figure_carries_a_clickable_point_per_cell():
    fig = figures.confusion_figure(np.array([[3, 1], [0, 4]]), ["a", "b"])
    scatter = fig.data[1]
    assert len(scatter.x) == 4 and scatter.hoverinfo == "none"


def test_the_orbit_figure_draws_one_line_per_model_and_class():
    from eqlens.analysis.orbit import OrbitResult

    result = OrbitResult(np.arange(4) * 90.0, np.zeros((4, 3)), np.full((4, 3), 1 / 3))
    fig = figures.orbit_figure({"A": result, "B": result}, ["x", "y", "z"], 45.0, [0, 90])
    assert len(fig.data) == 6 and list(fig.data[0].x)[-1] == 360.0


def test_models_with_different_classes_share_one_orbit_figure_and_a_class_keeps_its_colour():
    from eqlens.analysis.orbit import OrbitResult

    three = OrbitResult(np.arange(4) * 90.0, np.zeros((4, 3)), np.full((4, 3), 1 / 3))
    two = OrbitResult(np.arange(4) * 90.0, np.zeros((4, 2)), np.full((4, 2), 1 / 2))
    fig = figures.orbit_figure({"A": three, "B": two}, {"A": ["axion", "cdm", "no_sub"], "B": ["no_sub", "sub"]},
                               0.0, [0, 90])
    lines = {trace.name: trace.line.color for trace in fig.data}
    assert len(lines) == 5 and lines["A: no_sub"] == lines["B: no_sub"] != lines["B: sub"]
    with pytest.raises(ValueError, match="class names"):
        figures.orbit_figure({"A": two}, ["a", "b", "c"], 0.0, [0])


def test_figures_built_without_validation_still_pass_plotly_validation():
    import plotly.graph_objects as go

    from eqlens.analysis.orbit import OrbitResult

    result = OrbitResult(np.arange(8) * 45.0, np.zeros((8, 2)), np.full((8, 2), 0.5))
    built = [
        figures.probability_bar(["a", "b"], np.array([0.4, 0.6]), np.array([0.1, 0.5])),
        figures.orbit_figure({"A": result}, ["a", "b"], 30.0, [0, 90, 180, 270], "logits"),
        figures.confusion_figure(np.array([[1, 2], [3, 4]]), ["a", "b"]),
        figures.roc_figure({"a": {"fpr": [0, 0.5, 1], "tpr": [0, 0.8, 1], "auc": 0.7}}),
        figures.training_curves([{"global_step": 1, "loss": 1.0, "accuracy": 0.3}, {"global_step": 2, "loss": 0.9}]),
    ]
    for fig in built:
        go.Figure(fig.to_dict())  # raises ValueError on any property plotly does not know


def test_unvalidated_figures_still_carry_the_dark_template():
    layout = figures.probability_bar(["a"], np.array([1.0]), np.array([0.0])).to_dict()["layout"]
    assert layout["template"]["layout"]["plot_bgcolor"] == figures.pio.templates[figures.TEMPLATE].layout.plot_bgcolor


def test_error_anatomy_figure_draws_a_line_per_feature_against_the_class_rate():
    import numpy as np

    from eqlens.analysis.error_anatomy import error_anatomy

    truths = [{"label": 1, "theta_E": 1.2, "source_center": [0.0, 0.1 * i], "subhalo_masses": [1e8 * (i + 1)],
               "subhalo_positions": [[1.2, 0.0]], "vortex_endpoints": None, "log10_axion_mass": None,
               "exposure": 1000.0 + i} for i in range(40)]
    labels = np.ones(40, dtype=int)
    predicted = np.where(np.arange(40) < 10, 0, 1)  # the ten lightest subhalos are missed
    bins = error_anatomy(truths, labels, predicted, ["axion", "cdm", "no_sub"])
    fig = figures.error_anatomy_figure(bins, "cdm")
    lines = [t for t in fig.data if t.name != "all cdm lenses"]
    assert len(lines) == len(bins) and len(fig.data) == len(bins) + 1
    ring = next(t for t in lines if t.name.startswith("subhalo mass within"))
    assert list(ring.y) == [1.0, 0.0, 0.0, 0.0]
    assert fig.data[-1].y[0] == 0.25  # the class's error rate, dotted
    assert ring.customdata[0][2] == 10 and ring.customdata[0][3] == 10
    colours = [t.line.color for t in lines]
    assert len(set(colours)) == len(colours)  # every parameter its own colour, however many lines
    assert len(set(figures.DISTINCT_PALETTE)) == len(figures.DISTINCT_PALETTE) >= 9
