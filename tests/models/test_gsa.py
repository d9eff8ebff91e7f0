"""Promises of the GSA-Net layers and model: exact equivariance of every layer on random inputs,
exact invariance of the logits, attention that is a distribution, and lean memory."""

import math

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from eqlens.groups import act_on_group_channels, act_on_image, get_group
from eqlens.models import count_parameters, create
from eqlens.models.gsa import default_stem_stride
from eqlens.models.gsa_layers import (
    GroupAttentionBlock,
    GroupAveragedConv2d,
    GroupSelfAttention,
    LiftingSelfAttention,
    act_on_offsets,
)

GROUPS = ["C4", "C8", "D4"]
WINDOWS = [3, None]  # local 3x3 and global
TOL = 1e-5


def relative_error(actual: torch.Tensor, expected: torch.Tensor) -> float:
    return ((actual - expected).norm() / expected.norm()).item()


def tiny_model(group: str, size: int, **kw):
    torch.manual_seed(0)
    options = dict(width=8, heads=2, depth=1, kernel_size=3, stem_channels=4)
    return create("gsa", num_classes=3, group=group, image_size=size, **{**options, **kw}).eval()


@pytest.mark.parametrize("name", GROUPS)
def test_offsets_move_like_a_pixel_under_the_image_action(name):
    G = get_group(name)
    size, centre = 9, 4
    for du, dv in [(1, 0), (0, 1), (2, -3), (-1, 2)]:
        image = torch.zeros(size, size)
        image[centre + dv, centre + du] = 1.0
        for g in G.exact_elements:
            moved = act_on_image(image, g).nonzero()[0]
            new_du, new_dv = act_on_offsets(g, torch.tensor([du, dv])).tolist()
            assert (moved[1].item() - centre, moved[0].item() - centre) == (new_du, new_dv), g


def test_offsets_turn_by_45_degrees_under_the_finer_elements_of_c8():
    G = get_group("C8")
    moved = act_on_offsets(G.element(1), torch.tensor([1.0, 0.0]))
    assert torch.allclose(moved, torch.tensor([math.sqrt(0.5), -math.sqrt(0.5)], dtype=torch.float64))


@pytest.mark.parametrize("window", WINDOWS)
@pytest.mark.parametrize("name", GROUPS)
def test_lifting_self_attention_on_a_turned_image_gives_turned_and_permuted_fields(name, window):
    G = get_group(name)
    torch.manual_seed(1)
    layer = LiftingSelfAttention(G, 3, 8, heads=2, kernel_size=window)
    x = torch.randn(2, 3, 9, 9)
    with torch.no_grad():
        out = layer(x)
        assert out.shape == (2, 8, G.order, 9, 9)
        for g in G.exact_elements:
            assert relative_error(layer(act_on_image(x, g)), act_on_group_channels(out, G, g)) < TOL, g


@pytest.mark.parametrize("window", WINDOWS)
@pytest.mark.parametrize("name", GROUPS)
def test_group_self_attention_commutes_with_the_regular_action_on_random_fields(name, window):
    G = get_group(name)
    torch.manual_seed(2)
    layer = GroupSelfAttention(G, 6, 8, heads=2, kernel_size=window)
    f = torch.randn(2, 6, G.order, 9, 9)
    with torch.no_grad():
        out = layer(f)
        for g in G.exact_elements:
            assert relative_error(layer(act_on_group_channels(f, G, g)), act_on_group_channels(out, G, g)) < TOL, g


@pytest.mark.parametrize("name", GROUPS)
def test_attention_block_with_norms_and_feed_forward_commutes_with_the_regular_action(name):
    G = get_group(name)
    torch.manual_seed(3)
    block = GroupAttentionBlock(G, 8, heads=2, kernel_size=3)
    f = torch.randn(1, 8, G.order, 8, 8)  # even grid: centred windows map onto themselves too
    with torch.no_grad():
        out = block(f)
        for g in G.exact_elements:
            assert relative_error(block(act_on_group_channels(f, G, g)), act_on_group_channels(out, G, g)) < TOL, g


@pytest.mark.parametrize("stride,size", [(1, 16), (3, 16), (3, 17), (5, 33), (5, 30)])
def test_symmetrised_stem_commutes_with_exact_elements_on_odd_and_even_sizes(stride, size):
    G = get_group("D4")
    torch.manual_seed(4)
    stem = GroupAveragedConv2d(G, 1, 4, stride)
    x = torch.randn(2, 1, size, size)
    with torch.no_grad():
        out = stem(x)
        assert out.shape[-1] == stem.output_size(size) == math.ceil(size / stride) + (
            (math.ceil(size / stride) * stride - size) % 2
        )
        for g in G.exact_elements:
            assert relative_error(stem(act_on_image(x, g)), act_on_image(out, g)) < TOL, g


@pytest.mark.parametrize("size", [16, 17])
@pytest.mark.parametrize("name", GROUPS)
def test_every_tap_moves_with_the_input_and_the_logits_do_not(name, size):
    model = tiny_model(name, size)
    G = model.group
    torch.manual_seed(5)
    x = torch.randn(2, 1, size, size)
    with torch.no_grad():
        base = model.inspect(x, attention=False)
        assert set(base.group_channels) == {"lift_tap", "block_taps.0"}
        for g in G.exact_elements:
            turned = model.inspect(act_on_image(x, g), attention=False)
            assert relative_error(turned.logits, base.logits) < TOL, g
            assert relative_error(turned.features, base.features) < TOL, g
            assert relative_error(turned.maps["stem_tap"], act_on_image(base.maps["stem_tap"], g)) < TOL, g
            for tap, fields in base.group_channels.items():
                assert relative_error(turned.group_channels[tap], act_on_group_channels(fields, G, g)) < TOL, (tap, g)


def test_global_attention_model_is_invariant_too():
    model = tiny_model("C4", 16, kernel_size=None, stem_stride=3)
    x = torch.randn(1, 1, 16, 16)
    with torch.no_grad():
        logits = model(x)
        for g in model.group.exact_elements:
            assert relative_error(model(act_on_image(x, g)), logits) < TOL


def test_recorded_attention_rows_are_distributions_over_group_and_space():
    model = tiny_model("D4", 16, stem_stride=3)  # 6 x 6 tokens
    x = torch.randn(2, 1, 16, 16)
    with torch.no_grad():
        plain = model(x)
        inspection = model.inspect(x)
    order, tokens = model.group.order, 6 * 6
    lift, group = inspection.attention["lift"], inspection.attention["blocks.0.attention"]
    assert lift.weights.shape == (2, 2, order * tokens, tokens) and (lift.query_group, lift.key_group) == (order, 1)
    assert group.weights.shape == (2, 2, order * tokens, order * tokens) and group.key_group == order
    for attention in (lift, group):
        assert attention.query_grid == attention.key_grid == (6, 6)
        assert (attention.weights >= 0).all()
        assert torch.allclose(attention.weights.sum(-1), torch.ones(()), atol=1e-5)
    # a 3x3 window: each query reaches at most 9 pixels of each key element
    assert ((group.weights > 0).sum(-1) <= 9 * order).all()
    assert torch.allclose(inspection.logits, plain, atol=1e-6)


def test_checkpointed_backward_gives_the_gradients_of_the_plain_backward():
    x = torch.randn(2, 1, 16, 16)
    grads = []
    for use_checkpoint in (True, False):
        model = tiny_model("C8", 16, use_checkpoint=use_checkpoint).train()
        loss = torch.nn.functional.cross_entropy(model(x), torch.tensor([0, 2]))
        loss.backward()
        grads.append({n: p.grad for n, p in model.named_parameters()})
    assert grads[0].keys() == grads[1].keys()
    for name, grad in grads[0].items():
        assert grad is not None and torch.isfinite(grad).all(), name
        assert torch.allclose(grad, grads[1][name], atol=1e-6, rtol=1e-4), name
    assert any(g.abs().sum() > 0 for g in grads[0].values())


class LargestTensor(TorchDispatchMode):
    """Remembers the largest tensor any operation produced (a stand-in for the peak of one buffer)."""

    largest = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in out if isinstance(out, (tuple, list)) else (out,):
            if isinstance(t, torch.Tensor):
                self.largest = max(self.largest, t.numel())
        return out


def test_group_attention_never_builds_the_full_score_tensor_in_forward_or_backward():
    G = get_group("C8")
    batch, heads, channels, size, k = 2, 2, 4, 8, 3
    layer = GroupSelfAttention(G, channels, channels, heads=heads, kernel_size=k)
    f = torch.randn(batch, channels, G.order, size, size, requires_grad=True)
    full_scores = batch * heads * G.order * G.order * k * k * size * size
    with LargestTensor() as tracker:
        layer(f).square().sum().backward()
    # the largest buffer is the unfolded keys+values, 2 (channels/heads) / |G| = 1/2 of the full
    # scores here; one element's scores are 1/|G| of it. Building all scores at once would fail.
    assert tracker.largest <= full_scores // 2


def test_registry_builds_gsa_with_tens_of_thousands_of_parameters():
    for name in ("C4", "C8", "D4"):
        model = create("gsa", num_classes=3, group=name, image_size=64)
        assert 10_000 < count_parameters(model) < 100_000
        assert model.invariant and model.group.name == name


@pytest.mark.parametrize("size", [16, 23, 40])
def test_model_takes_any_size_from_16_and_returns_one_logit_per_class(size):
    model = tiny_model("C4", size)
    with torch.no_grad():
        assert model(torch.rand(1, 1, size, size)).shape == (1, 3)


def test_default_stem_keeps_at_most_32_tokens_per_side_with_an_odd_stride():
    for size, stride in [(16, 1), (32, 1), (64, 3), (129, 5), (256, 9)]:
        assert default_stem_stride(size) == stride
        assert math.ceil(size / stride) <= 32


def test_layers_refuse_shapes_they_cannot_handle():
    G = get_group("C4")
    with pytest.raises(ValueError):
        GroupSelfAttention(G, 4, 4, heads=2, kernel_size=4)
    with pytest.raises(ValueError):
        GroupSelfAttention(G, 4, 6, heads=4)
    with pytest.raises(ValueError):
        GroupSelfAttention(G, 4, 4, heads=2)(torch.randn(1, 4, 8, 5, 5))
    with pytest.raises(ValueError):
        GroupAveragedConv2d(G, 1, 4, stride=2)
    with pytest.raises(ValueError):
        tiny_model("C4", 16)(torch.randn(1, 3, 16, 16))
