"""Promises of the EqCvT models (``eqcvt`` as published, ``eqcvt_inv`` exactly invariant) and of their escnn block."""

import io

import pytest
import torch

from eqlens.groups import act_on_group_channels, act_on_image, get_group
from eqlens.models import count_parameters, create, spec
from eqlens.models.eqcvt import EqCvT
from eqlens.models.steerable import GroupMaxPool, SteerableLift

EXACT = 1e-5  # float32 noise is ~3e-7 relative
BROKEN = 1e-4


def relative_error(a: torch.Tensor, b: torch.Tensor) -> float:
    return ((a - b).norm() / b.norm()).item()


def tiny(name: str, group: str = "C4", size: int = 33, seed: int = 0) -> EqCvT:
    torch.manual_seed(seed)
    return create(name, num_classes=3, group=group, image_size=size).eval()


def images(size: int, batch: int = 2, seed: int = 0, width: int | None = None) -> torch.Tensor:
    return torch.rand(batch, 1, size, width or size, generator=torch.Generator().manual_seed(seed))


def symmetry_errors(model: EqCvT, x: torch.Tensor) -> dict[str, float]:
    """Worst relative error over the exact non-identity elements of the model's group: of the
    logits (invariance), of the group tap (``F(g x) = rho(g) F(x)``) and of the last token grid
    (``T(g x) = g T(x)``)."""
    group = model.group
    errors = {"logits": 0.0, "group": 0.0, "tokens": 0.0}
    with torch.no_grad():
        upright = model.inspect(x, attention=False)
        for g in group.exact_elements[1:]:
            moved = model.inspect(act_on_image(x, g), attention=False)
            found = {
                "logits": relative_error(moved.logits, upright.logits),
                "group": relative_error(moved.group_channels["group_tap"],
                                        act_on_group_channels(upright.group_channels["group_tap"], group, g)),
                "tokens": relative_error(moved.maps["stage.tokens"], act_on_image(upright.maps["stage.tokens"], g)),
            }
            errors = {k: max(errors[k], found[k]) for k in errors}
    return errors


def test_eqcvt_has_the_published_64810_parameters_for_two_classes_at_129_with_c4():
    assert count_parameters(create("eqcvt", num_classes=2, group="C4", image_size=129)) == 64_810


@pytest.mark.parametrize("group", ["C4", "C8", "D4", "D8"])
def test_eqcvt_inv_stays_under_100k_parameters_for_every_group(group):
    assert count_parameters(create("eqcvt_inv", num_classes=3, group=group, image_size=129)) <= 100_000


def test_the_registry_flags_eqcvt_inv_invariant_on_odd_sizes_and_eqcvt_not_invariant():
    assert spec("eqcvt_inv").invariant and spec("eqcvt_inv").odd_size_for_exactness
    assert not spec("eqcvt").invariant and spec("eqcvt").uses_group
    assert create("eqcvt_inv", 3, "D4", 33).invariant and not create("eqcvt", 3, "D4", 33).invariant


@pytest.mark.parametrize("group", ["C4", "C8", "D4"])
@pytest.mark.parametrize("size", [33, 35, 41])
def test_eqcvt_inv_logits_are_invariant_and_its_taps_equivariant_under_every_exact_element(group, size):
    errors = symmetry_errors(tiny("eqcvt_inv", group, size), images(size))
    assert max(errors.values()) < EXACT, errors


def test_eqcvt_inv_logits_are_invariant_on_odd_sizes_that_are_not_square():
    model, x = tiny("eqcvt_inv", "D4"), images(33, width=43)
    with torch.no_grad():
        for g in model.group.exact_elements[1:]:
            assert relative_error(model(act_on_image(x, g)), model(x)) < EXACT, g


@pytest.mark.parametrize("group", ["C4", "C8", "D4"])
def test_eqcvt_as_published_has_an_equivariant_group_tap_but_logits_that_change(group):
    errors = symmetry_errors(tiny("eqcvt", group), images(33))
    assert errors["group"] < EXACT, errors
    assert errors["logits"] > BROKEN and errors["tokens"] > BROKEN, errors


@pytest.mark.parametrize("group", ["C4", "D4"])
def test_eqcvt_inv_stays_invariant_with_train_mode_batch_statistics(group):
    # Batch statistics are pooled over space (and the group axis), so they do not see g. The
    # head's BatchNorm1d divides by the spread of a batch of near-identical random images, which
    # magnifies float noise ~20x in the logits: they are held to BROKEN, the token grid to EXACT.
    model = tiny("eqcvt_inv", group).train()
    errors = symmetry_errors(model, images(33, batch=4))
    assert errors["group"] < EXACT and errors["tokens"] < EXACT, errors
    assert errors["logits"] < BROKEN, errors
    assert symmetry_errors(tiny("eqcvt", group).train(), images(33, batch=4))["logits"] > 10 * BROKEN


def test_eqcvt_inv_is_not_exact_on_even_sizes_as_its_docstring_says():
    assert symmetry_errors(tiny("eqcvt_inv", "C4", 32), images(32))["logits"] > BROKEN


@pytest.mark.parametrize("name", ["eqcvt", "eqcvt_inv"])
def test_every_output_and_tap_is_a_plain_tensor_with_the_documented_shape(name):
    model = tiny(name, "D4")
    with torch.no_grad():
        result = model.inspect(images(33))
    assert type(result.logits) is torch.Tensor and result.logits.shape == (2, 3)
    assert type(result.features) is torch.Tensor and result.features.shape == (2, 64)
    # 33 -> 29 (7x7 conv, padding 1) -> 25 (5x5 blur); D4 has 8 elements.
    assert result.group_channels["group_tap"].shape == (2, 10, 8, 25, 25)
    assert type(result.maps["stage.tokens"]) is torch.Tensor and result.maps["stage.tokens"].shape == (2, 32, 13, 13)


@pytest.mark.parametrize("name", ["eqcvt", "eqcvt_inv"])
def test_attention_maps_have_rows_summing_to_one_and_a_key_grid_at_stride_two(name):
    with torch.no_grad():
        attention = tiny(name).inspect(images(33)).attention
    assert set(attention) == {"stage.blocks.0.attention", "stage.blocks.1.attention"}
    for recorded in attention.values():
        assert recorded.query_grid == (13, 13) and recorded.key_grid == (7, 7)
        assert recorded.weights.shape == (2, 3, 169, 49)
        assert torch.allclose(recorded.weights.sum(-1), torch.ones(()), atol=1e-5)


def test_group_max_pool_equals_escnn_group_pooling():
    from escnn import nn as enn

    lift = SteerableLift(get_group("D4"), fields=3).eval()
    x = torch.randn(2, 1, 17, 17)
    with torch.no_grad():
        features = lift(x)
        reference = enn.GroupPooling(lift.norm.out_type)(enn.GeometricTensor(features, lift.norm.out_type)).tensor
    assert torch.equal(GroupMaxPool(8)(features), reference)


@pytest.mark.parametrize("name, group", [("eqcvt", "C4"), ("eqcvt_inv", "D4"), ("eqcvt_inv", "C8")])
def test_the_exported_model_is_plain_torch_and_gives_the_same_logits_in_eval_mode(name, group):
    model = tiny(name, group)
    model.train()(images(33, batch=4))  # move the batch-norm running statistics off their defaults
    model.eval()
    exported = model.exported()
    assert not any(type(m).__module__.startswith("escnn") for m in exported.modules())
    x = images(33, seed=1)
    with torch.no_grad():
        assert relative_error(exported.lift(x), model.lift(x)) < 1e-6
        assert relative_error(exported(x), model(x)) < 1e-6
    assert not model.training and any(type(m).__module__.startswith("escnn") for m in model.modules())


def _round_trip(model: EqCvT, save_mode: bool, load_mode: bool) -> EqCvT:
    model.train(save_mode)
    buffer = io.BytesIO()
    torch.save(model.state_dict(), buffer)
    buffer.seek(0)
    fresh = tiny(model.build_config["name"], model.build_config["group"], seed=123).train(load_mode)
    fresh.load_state_dict(torch.load(buffer, weights_only=True))  # strict: keys must match
    return fresh


@pytest.mark.parametrize("save_mode", [True, False], ids=["saved-in-train", "saved-in-eval"])
@pytest.mark.parametrize("load_mode", [True, False], ids=["loaded-in-train", "loaded-in-eval"])
def test_a_state_dict_saved_in_either_mode_loads_into_either_mode_and_gives_the_same_logits(save_mode, load_mode):
    model = tiny("eqcvt", "C4")
    model.train()(images(33, batch=4))
    loaded = _round_trip(model, save_mode, load_mode)
    x = images(33, seed=2)
    for mode in (False, True):
        model.train(mode), loaded.train(mode)
        with torch.no_grad():
            assert torch.allclose(loaded(x), model(x), rtol=0, atol=1e-6), f"train={mode}"


def test_state_dict_keys_do_not_depend_on_the_mode():
    model = tiny("eqcvt_inv", "D4")
    eval_keys = set(model.eval().state_dict())
    train_keys = set(model.train().state_dict())
    assert eval_keys == train_keys and not any(k.endswith(".filter") and ".conv." in k for k in eval_keys)


def test_layer_grad_cam_runs_on_the_group_tap():
    from captum.attr import LayerGradCam

    model = tiny("eqcvt_inv", "C4")
    x = images(33).requires_grad_(True)
    attribution = LayerGradCam(model, model.taps()["group_tap"]).attribute(x, target=1)
    assert attribution.shape == (2, 1, 25, 25) and torch.isfinite(attribution).all()
    assert attribution.abs().sum() > 0
