"""AppTest with a regression checkpoint: Explore shows the predicted value in physical units under
rotation beside the simulated lens's truth; the classifier-only pages say so instead of failing."""

from __future__ import annotations

import math
import shutil

import pytest
import torch

from .conftest import no_exception


@pytest.fixture(scope="module")
def axion_checkpoint(tmp_path_factory):
    """A tiny gcnn C4 trained for one epoch on the axion mass (25-px lenses, odd: exact quarter turns)."""
    from eqlens.core.run_config import TrainConfig
    from eqlens.training import train

    out = tmp_path_factory.mktemp("regression") / "axion"
    train(TrainConfig(model="gcnn", task="axion_mass", data="model_i", image_size=25, train_size=8, val_size=4,
                      test_size=4, epochs=1, batch_size=4, robustness_size=0, device="cpu", out=str(out)))
    return out


@pytest.fixture
def regression_app(app_test, checkpoint_dir, axion_checkpoint):
    """``regression_app(page=None)``: the app with the axion checkpoint chosen on every page."""
    path = shutil.copytree(axion_checkpoint, checkpoint_dir / "axion")
    key = f"ckpt:{path}"

    def make(page=None):
        return app_test(page, explore_model=key, compare_a_model=key, mis_model=key)

    return make, path


def shown(at, prefix: str) -> float:
    return float(next(m.value for m in at.metric if m.label.startswith(prefix)))


def test_explore_shows_the_predicted_axion_mass_in_physical_units_beside_the_truth(regression_app):
    from eqlens.checkpoint import load_checkpoint
    from eqlens.checkpoint.predict import predict

    make, path = regression_app
    at = make()
    no_exception(at)
    lens = at.session_state["explore_lens"]
    assert lens.label == "axion"  # the default simulated lens (class 0 of model_i)
    assert shown(at, "true log10_axion_mass") == pytest.approx(lens.truth["log10_axion_mass"], abs=1e-6)
    model, card = load_checkpoint(path, device="cpu")
    expected = float(predict(model, card, torch.as_tensor(lens.image)[None]).values[0])
    assert -30 < expected < -16  # log10(m_a / eV), not a standardised output
    assert shown(at, "predicted log10_axion_mass") == pytest.approx(expected, abs=1e-4)
    assert not any(c.value.startswith(("logits:", "log-probabilities")) for c in at.caption)
    assert any(c.value.startswith("over the orbit:") for c in at.caption)


def test_the_rotation_slider_moves_the_prediction_along_the_orbit_and_a_quarter_turn_keeps_it(regression_app):
    from app import compute, lenses
    from eqlens.checkpoint import load_checkpoint

    make, path = regression_app
    at = make()
    upright = shown(at, "predicted log10_axion_mass")
    at.slider(key="explore_angle").set_value(90.0).run()
    no_exception(at)
    assert shown(at, "predicted log10_axion_mass") == pytest.approx(upright, abs=1e-5)  # gcnn: invariant
    at.slider(key="explore_angle").set_value(30.0).run()
    no_exception(at)
    model, card = load_checkpoint(path, device="cpu")
    x = compute.input_at(lenses.prepared(at.session_state["explore_lens"], 25), 30.0)
    with torch.no_grad():
        expected = float(card.decode(model.eval()(x))[0])
    turned = shown(at, "predicted log10_axion_mass")
    assert math.isfinite(turned) and turned == pytest.approx(expected, abs=1e-4)


@pytest.mark.parametrize("page", ["views/compare.py", "views/misclassified.py"])
def test_classifier_pages_say_a_regression_checkpoint_is_not_a_classifier(regression_app, page):
    make, _ = regression_app
    at = make(page)
    no_exception(at)
    assert any("regression checkpoint" in i.value and "not a classifier" in i.value for i in at.info)
