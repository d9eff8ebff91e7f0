"""Promises of eqlens.groups: group axioms, exact actions, and interpolated rotation agreeing with rot90."""

import itertools

import pytest
import torch

from eqlens.groups import (
    act_on_group_channels,
    act_on_image,
    circular_mask,
    get_group,
    rotate,
    stabilise_group_channels,
)

GROUPS = ["C4", "C8", "D4", "D8"]


@pytest.mark.parametrize("name", GROUPS)
def test_group_axioms(name):
    G = get_group(name)
    e = G.identity
    assert len(G.elements) == G.order == (2 if name[0] == "D" else 1) * int(name[1:])
    for g, h, k in itertools.product(G.elements, repeat=3):
        assert G.compose(G.compose(g, h), k) == G.compose(g, G.compose(h, k))
    for g in G.elements:
        assert G.compose(g, G.inverse(g)) == e == G.compose(G.inverse(g), g)
        assert G.compose(e, g) == g


@pytest.mark.parametrize("name", GROUPS)
def test_image_action_is_a_homomorphism_on_exact_elements(name):
    G = get_group(name)
    x = torch.randn(2, 1, 9, 9)
    for g, h in itertools.product(G.exact_elements, repeat=2):
        lhs = act_on_image(act_on_image(x, h), g)
        rhs = act_on_image(x, G.compose(g, h))
        assert torch.equal(lhs, rhs), (g, h)


@pytest.mark.parametrize("name", GROUPS)
def test_group_channel_action_is_a_homomorphism(name):
    G = get_group(name)
    f = torch.randn(2, 3, G.order, 7, 7)
    for g, h in itertools.product(G.exact_elements, repeat=2):
        lhs = act_on_group_channels(act_on_group_channels(f, G, h), G, g)
        rhs = act_on_group_channels(f, G, G.compose(g, h))
        assert torch.equal(lhs, rhs)
        assert torch.equal(stabilise_group_channels(act_on_group_channels(f, G, g), G, g), f)


def test_rotation_by_90_rolls_c4_group_axis_by_one():
    G = get_group("C4")
    f = torch.randn(1, 2, 4, 5, 5)
    out = act_on_group_channels(f, G, G.element(1))
    assert torch.equal(out, torch.rot90(torch.roll(f, 1, dims=2), 1, dims=(-2, -1)))


def test_interpolated_rotation_matches_rot90_direction():
    yy, xx = torch.meshgrid(torch.linspace(-1, 1, 33), torch.linspace(-1, 1, 33), indexing="ij")
    img = torch.exp(-((xx - 0.3) ** 2 + (yy + 0.2) ** 2) / 0.05)[None, None]
    resampled = rotate(img, 90.0, exact_when_possible=False)
    assert torch.allclose(resampled, torch.rot90(img, 1, dims=(-2, -1)), atol=1e-4)
    per_image = rotate(img.repeat(2, 1, 1, 1), torch.tensor([0.0, 90.0]), exact_when_possible=False)
    assert torch.allclose(per_image[1], resampled[0], atol=1e-6)


def test_circular_mask_is_rotation_invariant_and_inscribed():
    m = circular_mask(31, 31)
    assert torch.equal(m, torch.rot90(m, 1)) and m[15, 0] == 1 and m[0, 0] == 0


def test_unknown_group_names_are_rejected():
    for bad in ("SO2", "C", "X4", "C0"):
        with pytest.raises(ValueError):
            get_group(bad)


def test_quarter_turn_of_non_square_group_channels_swaps_height_and_width():
    G = get_group("C4")
    f = torch.randn(1, 2, 4, 5, 7)
    out = act_on_group_channels(f, G, G.element(1))
    assert out.shape == (1, 2, 4, 7, 5)
    assert torch.equal(stabilise_group_channels(out, G, G.element(1)), f)


def test_the_exact_turns_are_the_quarter_turns_a_group_holds_mirrors_left_out():
    from eqlens.groups import get_group

    for name in ("C4", "C8", "D4", "D8"):
        assert get_group(name).exact_turns_deg == (0.0, 90.0, 180.0, 270.0)
    assert get_group("C2").exact_turns_deg == (0.0, 180.0) and get_group("C1").exact_turns_deg == (0.0,)
