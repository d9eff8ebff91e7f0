"""Promises of eqlens.analysis.equivariance, checked on models whose symmetry is known by construction."""

import json

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from eqlens.analysis.equivariance import (
    FEATURES_KEY,
    PLAIN_ROTATION,
    accuracy_over_angles,
    exact_errors,
    invariance_error,
    layer_equivariance_errors,
    logit_std_8x45,
    orbit_consistency,
    predictions_over_angles,
    report_value,
    robustness_report,
)
from eqlens.groups import circular_mask
from eqlens.models import create

from .toy_models import ConstantModel, LiftingModel, OrbitAveraged, SymmetricConvModel

SIZE = 17


def images(n=4, size=SIZE, seed=0):
    return torch.rand(n, 1, size, size, generator=torch.Generator().manual_seed(seed))


def plain_cnn(seed=0):
    torch.manual_seed(seed)
    return create("cnn", num_classes=3, image_size=SIZE, widths=(4, 8))


@pytest.mark.parametrize("group", ["C4", "D4"])
def test_a_cnn_averaged_over_the_group_orbit_is_invariant_to_float_noise(group):
    result = invariance_error(OrbitAveraged(plain_cnn(), group), images(), group)
    assert result["max"] < 1e-5
    assert result["max"] >= result["mean"] >= 0


def test_a_plain_cnn_is_not_invariant_to_quarter_turns():
    assert invariance_error(plain_cnn(), images(), "C4")["max"] > 1e-4


@pytest.mark.parametrize("group, count", [("C4", 3), ("C8", 3), ("D4", 7), ("D8", 7)])
def test_invariance_error_reports_each_exact_non_identity_element(group, count):
    result = invariance_error(plain_cnn(), images(2), group)
    assert len(result["per_element"]) == count
    assert result["max"] == pytest.approx(max(v["max"] for v in result["per_element"].values()))


def test_accuracy_is_the_same_at_every_quarter_turn_for_an_invariant_model():
    model, x = OrbitAveraged(plain_cnn(), "C4"), images(12)
    y = torch.arange(12) % 3
    accuracy, worst = accuracy_over_angles(model, x, y, [0, 90, 180, 270])
    assert torch.equal(accuracy, accuracy[0].expand(4))
    assert worst == float(accuracy.min())
    probs = predictions_over_angles(model, x, [0, 90, 180, 270])
    torch.testing.assert_close(probs, probs[0].expand_as(probs), rtol=0, atol=1e-6)


def test_every_angle_sees_the_input_cut_to_the_inscribed_disk():
    model, x = plain_cnn(), images(3)
    probs = predictions_over_angles(model, x, [0, 30, 90])
    assert probs.shape == (3, 3, 3)
    torch.testing.assert_close(probs.sum(-1), torch.ones(3, 3))
    with torch.no_grad():
        upright = model.eval()(x * circular_mask(SIZE, SIZE)).softmax(-1)
    torch.testing.assert_close(probs[0], upright)


def test_an_invariant_model_keeps_its_prediction_over_the_quarter_turns():
    assert orbit_consistency(OrbitAveraged(plain_cnn(), "C4"), images(6), [90, 180, 270]) == 1.0


@pytest.mark.parametrize("group", ["C4", "D4"])
def test_layer_errors_vanish_for_a_lifting_convolution_and_not_for_a_random_conv(group):
    torch.manual_seed(1)
    equivariant = layer_equivariance_errors(LiftingModel(group), images(), group)
    random_conv = layer_equivariance_errors(LiftingModel(group, equivariant=False), images(), group)
    assert set(equivariant) == set(random_conv) == {"lifted", FEATURES_KEY}
    assert max(equivariant.values()) < 1e-5
    assert random_conv["lifted"] > 1e-2


@settings(max_examples=8, deadline=None)
@given(size=st.integers(5, 21), seed=st.integers(0, 2**16))
def test_a_lifting_convolution_is_equivariant_for_every_input_size(size, seed):
    torch.manual_seed(seed)
    errors = layer_equivariance_errors(LiftingModel("D4", channels=2, kernel_size=3), images(2, size, seed), "D4")
    assert errors["lifted"] < 1e-5


def test_plain_maps_are_compared_with_the_turned_map():
    torch.manual_seed(2)
    symmetric = layer_equivariance_errors(SymmetricConvModel(), images(), "D4")
    random_conv = layer_equivariance_errors(SymmetricConvModel(symmetric=False), images(), "D4")
    key = "map" + PLAIN_ROTATION
    assert set(symmetric) == {key}
    assert symmetric[key] < 1e-5
    assert random_conv[key] > 1e-2


def test_a_group_tap_measured_with_another_group_raises():
    with pytest.raises(ValueError, match="orientation channels"):
        layer_equivariance_errors(LiftingModel("C4"), images(), "D4")


def test_non_square_or_empty_inputs_raise():
    with pytest.raises(ValueError, match="square"):
        invariance_error(plain_cnn(), torch.rand(2, 1, 17, 15), "C4")
    with pytest.raises(ValueError, match="empty"):
        invariance_error(plain_cnn(), torch.rand(0, 1, 17, 17), "C4")


def test_the_seed_std_is_zero_for_a_constant_model():
    mean, per_image = logit_std_8x45(ConstantModel(), images())
    assert mean == 0.0
    assert torch.equal(per_image, torch.zeros(4, dtype=per_image.dtype))


def test_the_seed_std_sees_the_45_degree_resampling_that_exact_invariance_ignores():
    model, x = OrbitAveraged(plain_cnn(), "C4"), images()
    mean, per_image = logit_std_8x45(model, x)
    assert invariance_error(model, x, "C4")["max"] < 1e-5
    assert per_image.shape == (4,) and mean > 1e-5


def test_measuring_leaves_the_model_in_training_mode_with_its_statistics_untouched():
    model = plain_cnn().train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    exact_errors(model, images(), "C4")
    predictions_over_angles(model, images(), [0, 45])
    assert model.training
    for key, value in model.state_dict().items():
        assert torch.equal(value, before[key]), key


def test_the_robustness_report_has_stable_keys_and_is_plain_json():
    model, x, y = plain_cnn(), images(5), torch.tensor([0, 1, 2, 0, 1])
    report = robustness_report(model, x, y, "D4", angles=[45, 90, 135], batch_size=2)
    assert set(report) == {
        "group", "num_images", "invariance_error", "layer_equivariance", "angles_deg", "accuracy_by_angle",
        "worst_angle_accuracy", "orbit_consistency", "logit_std_8x45", "logit_std_8x45_per_image",
    }
    json.dumps(report, allow_nan=False)
    assert report["angles_deg"] == [45.0, 90.0, 135.0]
    assert len(report["accuracy_by_angle"]) == 3 and len(report["logit_std_8x45_per_image"]) == 5
    assert report["worst_angle_accuracy"] == min(report["accuracy_by_angle"])
    assert report["invariance_error"] == invariance_error(model, x, "D4", batch_size=2)
    # batching changes only float rounding
    assert report["layer_equivariance"] == pytest.approx(layer_equivariance_errors(model, x, "D4", batch_size=3),
                                                         rel=1e-4)
    assert 0.0 <= report["orbit_consistency"] <= 1.0


def test_a_shipped_card_written_before_the_rename_still_gives_its_8x45_logit_std():
    from pathlib import Path

    card = json.loads((Path(__file__).parents[2] / "checkpoints" / "model_i_gcnn" / "model_card.json").read_text())
    robustness = card["metrics"]["test"]["robustness"]
    assert "logit_std_8x45" not in robustness  # written under the former name
    assert report_value(robustness, "logit_std_8x45") == robustness["seed_logit_std"]
    assert report_value({"logit_std_8x45": 0.5, "seed_logit_std": 9.0}, "logit_std_8x45") == 0.5
