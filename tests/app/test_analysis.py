"""Promises of the analysis modules behind the app: attention, group channels, attributions, orbits."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch

from eqlens.analysis import activations, attention, attribution, orbit
from eqlens.groups import act_on_group_channels, act_on_image, get_group
from eqlens.models import AttentionMap, create


def softmax_rows(*shape):
    return torch.softmax(torch.randn(*shape, generator=torch.Generator().manual_seed(0)), dim=-1)


# ---- attention -------------------------------------------------------------------------------

def test_a_query_map_peaks_where_its_only_key_sits():
    weights = torch.zeros(1, 2, 16, 16)
    weights[:, :, :, 4 * 3 + 1] = 1.0  # every query looks at key (row 3, col 1) of a 4x4 grid
    att = AttentionMap(weights, (4, 4), (4, 4))
    heat = attention.query_map(att, (0, 0), (32, 32))
    row, col = divmod(int(heat[0].argmax()), 32)
    assert 24 <= row < 32 and 8 <= col < 16


def test_coarse_keys_are_spread_back_so_square_rows_still_sum_to_one():
    att = AttentionMap(softmax_rows(2, 3, 49, 16), (7, 7), (4, 4))
    square, grid = attention.square_attention(att)
    assert square.shape == (2, 49, 49) and grid == (7, 7)
    torch.testing.assert_close(square.sum(-1), torch.ones(2, 49))


def test_group_tokens_fold_into_spatial_rows_that_sum_to_one():
    att = AttentionMap(softmax_rows(1, 2, 4 * 9, 4 * 9), (3, 3), (3, 3), query_group=4, key_group=4)
    spatial, _, _ = attention.spatial_weights(att)
    assert spatial.shape == (1, 2, 9, 9)
    torch.testing.assert_close(spatial.sum(-1), torch.ones(1, 2, 9))


def test_rollout_across_a_stage_change_keeps_rows_stochastic_on_the_first_grid():
    first = AttentionMap(softmax_rows(1, 2, 49, 16), (7, 7), (4, 4))
    second = AttentionMap(softmax_rows(1, 3, 16, 4), (4, 4), (2, 2))
    rolled, grid = attention.rollout([first, second])
    assert rolled.shape == (1, 16, 49) and grid == (7, 7)
    torch.testing.assert_close(rolled.sum(-1), torch.ones(1, 16))
    assert attention.rollout_map([first, second], (10, 10), (33, 33)).shape == (1, 33, 33)


def test_rollout_of_one_block_is_its_head_mean_mixed_with_the_identity():
    att = AttentionMap(softmax_rows(1, 2, 9, 9), (3, 3), (3, 3))
    rolled, _ = attention.rollout([att], residual=0.5)
    expected = (att.weights.mean(1) + 0.5 * torch.eye(9)) / 1.5
    torch.testing.assert_close(rolled, expected)


# ---- group channels --------------------------------------------------------------------------

@pytest.mark.parametrize("group_name", ["C4", "D4", "C8"])
def test_stabilise_at_a_group_element_undoes_the_regular_action(group_name):
    group = get_group(group_name)
    features = torch.randn(2, 3, group.order, 9, 9)
    for g in group.exact_elements:
        moved = act_on_group_channels(features, group, g)
        torch.testing.assert_close(activations.stabilise(moved, group, g.angle_deg, bool(g.flip)), features)


def test_a_fractional_group_roll_lies_between_its_neighbouring_rolls():
    features = torch.randn(1, 1, 4, 5, 5)
    half = activations._roll_group_axis(features, 1.5)
    torch.testing.assert_close(half, 0.5 * torch.roll(features, 1, -3) + 0.5 * torch.roll(features, 2, -3))
    torch.testing.assert_close(activations._roll_group_axis(features, 2.0), torch.roll(features, 2, -3))


@pytest.mark.parametrize("group_name", ["C4", "D4"])
def test_lifting_commutes_with_every_exact_group_element(group_name):
    group = get_group(group_name)
    x = torch.rand(1, 1, 17, 17, generator=torch.Generator().manual_seed(1))
    layer = activations.lifting_layer(activations.oriented_kernel(), group)
    with torch.no_grad():
        lifted = layer(x)
        assert lifted.shape == (1, 1, group.order, 17, 17)
        for g in group.exact_elements:
            err = activations.equivariance_error(layer(act_on_image(x, g)), lifted, group, g.rot, g.flip)
            assert err < 1e-5, (str(g), err)


def test_the_teaching_kernel_changes_under_a_quarter_turn():
    bank = activations.lifting_layer(activations.oriented_kernel(), "C4").transformed_kernels()[:, 0, 0]
    assert (bank[1] - bank[0]).abs().max() > 0.1 * bank[0].abs().max()


def test_the_teaching_layer_is_the_models_layer_with_the_models_kernel():
    """Learn shows a trained gcnn's own first kernel, moved and applied by the network's own rule: the
    teaching layer's maps are exactly that channel of the model's first layer (bias aside)."""
    from eqlens import models

    model = models.create("gcnn", num_classes=3, group="C4", image_size=33).eval()
    kernel, channel = activations.first_lifting_kernel(model)
    first = next(m for m in model.modules() if type(m).__name__ == "LiftingConv")
    x = torch.rand(1, 1, 33, 33, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        taught = activations.lifting_layer(kernel, "C4")(x)[:, 0]
        own = first(x)[:, channel]
        if first.bias is not None:
            own = own - first.bias[channel]
    torch.testing.assert_close(taught, own, rtol=1e-5, atol=1e-6)
    assert activations.first_lifting_kernel(models.create("cnn", num_classes=3, group="C4", image_size=33)) is None


def test_field_channels_rejects_a_field_the_layer_does_not_have():
    with pytest.raises(ValueError, match="out of range"):
        activations.field_channels(torch.zeros(1, 2, 4, 3, 3), 5)


# ---- attributions ----------------------------------------------------------------------------

@pytest.fixture(scope="module")
def plain_cnn():
    torch.manual_seed(0)
    return create("cnn", num_classes=3, image_size=33).eval()


@pytest.mark.parametrize("method", list(attribution.METHODS))
def test_every_method_returns_one_map_per_image(plain_cnn, method):
    x = torch.rand(2, 1, 33, 33)
    out = attribution.attribute(plain_cnn, x, method, 1, n_steps=4, window=5, stride=4)
    assert out.shape == (2, 33, 33) and torch.isfinite(out).all() and out.abs().sum() > 0


def test_grad_cam_refuses_the_pre_logit_feature_tap(plain_cnn):
    with pytest.raises(ValueError, match="Grad-CAM needs a spatial map"):
        attribution.attribute(plain_cnn, torch.rand(1, 1, 33, 33), "gradcam", 0, layer="features")


def test_an_unknown_method_is_named_in_the_error(plain_cnn):
    with pytest.raises(ValueError, match="unknown attribution method 'lime'"):
        attribution.attribute(plain_cnn, torch.rand(1, 1, 33, 33), "lime", 0)


def test_rotating_back_a_quarter_turned_map_is_exact():
    attr = torch.randn(1, 9, 9)
    turned = torch.rot90(attr, 1, dims=(-2, -1))
    torch.testing.assert_close(attribution.rotate_back(turned, 90.0), attr)
    assert attribution.attribution_invariance_error(attr, attribution.rotate_back(turned, 90.0)) == 0.0


def test_saliency_of_an_invariant_model_is_invariant_after_rotating_back():
    torch.manual_seed(0)
    model = create("gcnn", num_classes=3, group="C4", image_size=33).eval()
    x = torch.rand(1, 1, 33, 33, generator=torch.Generator().manual_seed(2))
    upright = attribution.attribute(model, x, "saliency", 0)
    turned = attribution.attribute(model, torch.rot90(x, 1, dims=(-2, -1)), "saliency", 0)
    assert attribution.attribution_invariance_error(upright, attribution.rotate_back(turned, 90.0)) < 1e-4


# ---- orbit -----------------------------------------------------------------------------------

def test_the_whole_orbit_is_one_forward_and_then_a_cache_hit(plain_cnn):
    calls = []
    handle = plain_cnn.register_forward_hook(lambda m, i, o: calls.append(i[0].shape[0]))
    cache = orbit.OrbitCache()
    x = torch.rand(1, 1, 33, 33)
    try:
        first = orbit.orbit(plain_cnn, x, orbit.orbit_angles(24), cache=cache)
        second = orbit.orbit(plain_cnn, x, orbit.orbit_angles(24), cache=cache)
    finally:
        handle.remove()
    assert calls == [24] and second is first and cache.hits == 1
    assert first.probabilities.shape == (24, 3)


def test_a_plain_cnn_changes_its_logits_under_an_exact_quarter_turn(plain_cnn):
    result = orbit.compute_orbit(plain_cnn, torch.rand(1, 1, 33, 33), orbit.orbit_angles(8))
    assert result.exact_spread("C4") > 1e-4


def test_an_invariant_model_is_flat_at_the_exact_angles_of_its_orbit():
    torch.manual_seed(0)
    model = create("gcnn", num_classes=3, group="C4", image_size=33).eval()
    result = orbit.compute_orbit(model, torch.rand(1, 1, 33, 33), orbit.orbit_angles(8))
    assert result.exact_spread("C4") < 1e-5


def test_an_orbit_of_ready_copies_is_the_orbit_when_the_copies_are_the_rotations(plain_cnn):
    x, angles = torch.rand(1, 1, 33, 33), orbit.orbit_angles(8)
    expected = orbit.compute_orbit(plain_cnn, x, angles)
    got = orbit.orbit_of_copies(plain_cnn, orbit.rotated_copies(x, angles), angles, batch_size=3)
    assert np.allclose(got.logits, expected.logits, atol=1e-6) and np.array_equal(got.angles, expected.angles)
    with pytest.raises(ValueError, match="one copy"):
        orbit.orbit_of_copies(plain_cnn, torch.rand(3, 1, 33, 33), angles)


def test_the_nearest_orbit_angle_wraps_around_the_circle():
    result = orbit.OrbitResult(orbit.orbit_angles(8), torch.zeros(8, 2).numpy(), torch.zeros(8, 2).numpy())
    assert result.nearest(359.0) == 0 and result.nearest(44.0) == 1


def test_the_core_imports_without_streamlit_plotly_or_captum():
    code = ("import sys, eqlens, eqlens.analysis.attention, eqlens.analysis.activations, "
            "eqlens.analysis.attribution, eqlens.analysis.orbit; "
            "print(sorted(m for m in ('streamlit', 'plotly', 'captum') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_the_rollout_row_over_the_image_equals_the_row_of_the_full_rollout():
    first = AttentionMap(softmax_rows(2, 2, 49, 16), (7, 7), (4, 4))
    second = AttentionMap(softmax_rows(2, 3, 16, 4), (4, 4), (2, 2))
    position = (20.0, 9.0)
    full, grid = attention.rollout([first, second])
    row = full[:, attention.token_at(position, (33, 33), (4, 4))]  # [B, N] over the last grid's tokens
    # the row's tokens on their grid, spread over the image bilinearly (a token covers its cell)
    expected = torch.nn.functional.interpolate(row.reshape(2, 1, *grid).float(), size=(33, 33), mode="bilinear",
                                               align_corners=False)[:, 0]
    torch.testing.assert_close(attention.rollout_map([first, second], position, (33, 33)), expected)


def test_a_query_map_of_group_tokens_equals_the_map_of_the_folded_spatial_weights():
    att = AttentionMap(softmax_rows(1, 2, 4 * 9, 4 * 4), (3, 3), (2, 2), query_group=4, key_group=4)
    spatial, _, _ = attention.spatial_weights(att)
    folded = AttentionMap(spatial, (3, 3), (2, 2))
    for head in (None, 1):
        torch.testing.assert_close(attention.query_map(att, (7, 2), (12, 12), head),
                                   attention.query_map(folded, (7, 2), (12, 12), head))


def test_an_orbit_runs_in_chunks_within_its_pixel_budget(plain_cnn, monkeypatch):
    # A 512 px card (the largest a card may ask for) ran all 73 copies in one forward: 17 GB for a gcnn.
    assert orbit.orbit_batch_size(512, 512) == 2 and orbit.orbit_batch_size(81, 81) >= 73
    assert orbit.orbit_batch_size(5000, 5000) == 1
    monkeypatch.setattr(orbit, "ORBIT_BATCH_PIXELS", 3 * 33 * 33)
    sizes = []
    handle = plain_cnn.register_forward_pre_hook(lambda module, args: sizes.append(args[0].shape[0]))
    try:
        x, angles = torch.rand(1, 1, 33, 33), orbit.orbit_angles(8)
        chunked = orbit.compute_orbit(plain_cnn, x, angles)
        whole = orbit.compute_orbit(plain_cnn, x, angles, batch_size=8)
    finally:
        handle.remove()
    assert sizes == [3, 3, 2, 8]
    assert np.allclose(chunked.logits, whole.logits, atol=1e-6)
