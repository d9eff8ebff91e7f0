"""Explore and Learn for the researcher and the newcomer (issue 15): arcsec axes and a legend, the
scene's parameters, clipped attribution scales, exports, a failed upload that clears the page, titles
that fit, a commutative diagram that is a diagram."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from app import catalog, figures
from eqlens.data.transforms import InputSpec
from eqlens.groups import get_group
from eqlens.simulation import LensSimulator, get_config
from eqlens.simulation.scene import MASS_UNIT, scene_parameters, subhalo_rows

from .conftest import no_exception, ring_lens


def npy_bytes(array) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array)
    return buffer.getvalue()


def png_bytes(size: int = 48) -> bytes:
    buffer = io.BytesIO()
    yy, xx = np.mgrid[:size, :size] - size // 2
    ring = 255 * np.exp(-((np.hypot(yy, xx) - size / 4) ** 2) / 6)
    Image.fromarray(ring.astype(np.uint8)).save(buffer, "PNG")
    return buffer.getvalue()


@pytest.fixture(scope="module")
def truth():
    import torch

    simulator = LensSimulator(get_config("model_i"), device="cpu", dtype=torch.float32)
    return {c: simulator.simulate(0, [0], labels=[c]).truth.for_image(0) for c in range(3)}


# ---- the package: pixel scales and the scene ----------------------------------------------------

def test_the_model_inputs_pixel_scale_follows_its_crop_and_size():
    assert InputSpec(image_size=81, crop=81).pixel_scale(150, 0.05) == pytest.approx(0.05)
    assert InputSpec(image_size=65).pixel_scale(150, 0.05) == pytest.approx(0.05 * 150 / 65)
    assert InputSpec(image_size=33, crop=99).pixel_scale(150, 0.05) == pytest.approx(0.15)


def test_the_scene_names_its_einstein_radius_subhalos_and_axion_mass_with_units(truth):
    axion = {r["parameter"]: r for r in scene_parameters(truth[0])}
    assert axion["Einstein radius theta_E (main lens)"]["unit"] == "arcsec"
    assert axion["Einstein radius theta_E (main lens)"]["value"] == pytest.approx(1.2815, abs=1e-3)
    assert axion["axion mass m_a"]["unit"] == "eV" and 1e-24 <= axion["axion mass m_a"]["value"] <= 1e-22
    cdm = {r["parameter"]: r for r in scene_parameters(truth[1])}
    assert cdm["subhalos"]["value"] == 25 and cdm["subhalo mass, total"]["unit"] == MASS_UNIT
    rows = subhalo_rows(truth[1])
    assert len(rows) == 25 and rows[0]["mass_msun"] >= rows[-1]["mass_msun"]
    assert all(0.25 - 1e-6 <= r["r_arcsec"] <= 2.0 + 1e-6 for r in rows)
    assert subhalo_rows(truth[2]) == [] and "axion mass m_a" not in {r["parameter"] for r in scene_parameters(truth[2])}


# ---- figures -------------------------------------------------------------------------------------

def test_the_lens_figure_has_arcsec_axes_and_a_legend_entry_per_truth_overlay(truth):
    image = np.random.default_rng(0).random((150, 150))
    fig = figures.lens_figure(image, "lens", 0.05, truth[0], how="asinh")
    assert fig.layout.xaxis.title.text == "x (arcsec)"
    assert fig.data[0].x0 == pytest.approx(-74.5 * 0.05) and fig.data[0].dx == pytest.approx(0.05)
    assert len(fig.to_json()) < 100_000  # a PNG, not 22,500 numbers, per slider move
    names = [t.name for t in fig.data[2:]]
    assert any(n.startswith("Einstein ring") for n in names) and any(n.startswith("vortex") for n in names)
    cdm = figures.lens_figure(image, "lens", 0.05, truth[1])
    assert any((t.name or "").startswith("subhalo") for t in cdm.data)
    assert figures.lens_figure(image, "upload", None).layout.xaxis.title.text == "x (px)"


def test_a_subhalo_turns_with_the_picture_on_the_lens_figure(truth):
    image = np.zeros((150, 150))
    upright = figures.lens_figure(image, "", 0.05, truth[1])
    turned = figures.lens_figure(image, "", 0.05, truth[1], angle=90.0)
    up = next(t for t in upright.data if (t.name or "").startswith("subhalo"))
    tu = next(t for t in turned.data if (t.name or "").startswith("subhalo"))
    # counter-clockwise on the screen with y down: (x, y) -> (y, -x)
    np.testing.assert_allclose(tu.x, up.y, atol=1e-9)
    np.testing.assert_allclose(tu.y, [-v for v in up.x], atol=1e-9)


@pytest.mark.parametrize("how", figures.STRETCHES)
def test_every_stretch_keeps_the_order_of_the_pixels(how):
    image = np.linspace(0, 1000, 100).reshape(10, 10)
    shown = figures.stretch(image, how)
    assert np.all(np.diff(shown.ravel()) > 0)


def test_d8_panel_titles_wrap_inside_their_cells_instead_of_overlapping():
    group = get_group("D8")
    labels = [figures.element_label(g) for g in group.elements]
    assert labels[1] == "45°" and labels[-1] == "flip, 315°"
    font = figures._font(13)
    long = "rot 270 deg after flip, and more words"
    lines = figures.wrap_text(long, 90, font)
    assert len(lines) > 1 and all(font.getlength(line) <= 90 for line in lines)
    grid = figures.image_grid([(long, np.zeros((8, 8)))], cell=90)
    assert grid.height > figures.image_grid([("short", np.zeros((8, 8)))], cell=90).height


def test_a_clipped_colour_scale_says_so_and_keeps_its_range():
    panels = [("a", np.linspace(-10, 10, 100).reshape(10, 10))]
    clipped = np.asarray(figures.image_grid(panels, cmap="RdBu_r", value_range=(-1.0, 1.0), colorbar_label="attr"))
    free = np.asarray(figures.image_grid(panels, cmap="RdBu_r", symmetric=True, colorbar_label="attr"))
    assert clipped.shape == free.shape and not np.array_equal(clipped, free)


def test_the_commutative_diagram_is_a_picture_of_the_square():
    x = np.random.default_rng(0).random((33, 33))
    picture = figures.commutative_diagram(x, np.rot90(x), x, np.rot90(x), np.rot90(x), "90°", 1.2e-7)
    assert picture.width > 3 * 130 and picture.height > 2 * 130


# ---- pages ---------------------------------------------------------------------------------------

def _logit_captions(at) -> list[str]:
    return [c.value for c in at.caption if c.value.startswith(("logits:", "log-probabilities (orbit average):"))]


def test_a_failed_upload_after_a_good_one_clears_the_previous_images_panels_and_prediction(app_test):
    at = app_test()
    at.radio(key="explore_source").set_value("Upload").run()
    at.file_uploader(key="explore_image_upload").upload("ring.png", png_bytes()).run()
    no_exception(at)
    assert _logit_captions(at) and any("upload ring.png" in c.value for c in at.caption)
    at.file_uploader(key="explore_image_upload").upload("nan.npy", npy_bytes(np.full((32, 32), np.nan))).run()
    no_exception(at)
    assert at.error and "NaN" in at.error[0].value
    assert not _logit_captions(at), "the previous image's prediction is still on screen"
    assert not any("upload ring.png" in c.value for c in at.caption)
    assert not at.get("plotly_chart")


def test_explore_shows_the_scene_and_arcsec_axes_for_a_simulated_lens(app_test):
    at = app_test(explore_model=catalog.untrained_key("gcnn", "C4"))
    no_exception(at)
    params = at.dataframe[0].value
    assert "Einstein radius theta_E (main lens)" in list(params["parameter"])
    assert any("recipe units" in c.value for c in at.caption)
    assert at.slider(key="explore_angle").value == 0.0
    at.radio(key="explore_stretch").set_value("asinh").run()
    no_exception(at)


def test_explore_attributions_are_clipped_at_a_percentile_and_exported(app_test):
    at = app_test(explore_model=catalog.untrained_key("gcnn", "C4"))  # a simulated lens
    at.radio(key="explore_view").set_value("Attributions").run()
    at.selectbox(key="explore_attr_method").set_value("saliency").run()
    no_exception(at)
    assert any("percentile of |A|" in caption for img in at.image for caption in img.captions)
    at.slider(key="explore_angle").set_value(90.0).run()
    error = next(m for m in at.metric if m.label.startswith("attribution invariance error"))
    assert float(error.value) < 1e-4
    labels = [b.label for b in at.get("download_button")]
    assert "figure (PNG)" in labels and "numbers (JSON)" in labels


def test_explore_says_the_stabilised_view_moves_between_the_groups_angles(app_test):
    at = app_test(explore_pinned_lens=ring_lens(), explore_model=catalog.untrained_key("gcnn", "C4"),
                  explore_view="Group channels")
    at.slider(key="explore_angle").set_value(30.0).run()
    no_exception(at)
    assert any("not expected to stand still" in c.value for c in at.caption)
    at.slider(key="explore_angle").set_value(90.0).run()
    assert not any("not expected to stand still" in c.value for c in at.caption)


def test_learn_draws_the_diagram_and_prints_its_error_as_plain_text(app_test):
    at = app_test("views/learn.py")
    no_exception(at)
    assert not at.latex
    metric = next(m for m in at.metric if m.label.startswith("|L(g x)"))
    assert float(metric.value) < 1e-5
    at.selectbox(key="learn_group").set_value("D4").run()
    no_exception(at)
