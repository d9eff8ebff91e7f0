"""Promises of the shared CvT blocks (eqlens.models.cvt_layers) and of the CvT baseline (``cvt``)."""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from eqlens.groups import act_on_image, get_group
from eqlens.models import count_parameters, create
from eqlens.models.cvt import CvT
from eqlens.models.cvt_layers import OrbitSharedConv2d, kernel_orbits


def relative_error(a: torch.Tensor, b: torch.Tensor) -> float:
    return ((a - b).norm() / b.norm()).item()


def tiny_cvt(size: int = 33, seed: int = 0) -> CvT:
    torch.manual_seed(seed)
    return create("cvt", num_classes=3, group="C4", image_size=size).eval()


def test_cvt_has_the_published_463106_parameters_for_two_classes_at_129():
    assert count_parameters(create("cvt", num_classes=2, group="C4", image_size=129)) == 463_106


@pytest.mark.parametrize("height, width", [(32, 32), (33, 45), (40, 33)])
def test_cvt_maps_any_reasonable_image_size_to_one_logit_row_per_image(height, width):
    logits = tiny_cvt()(torch.rand(2, 1, height, width))
    assert logits.shape == (2, 3) and torch.isfinite(logits).all()


def test_cvt_logits_change_under_a_quarter_turn_because_it_has_no_built_in_symmetry():
    model, x = tiny_cvt(), torch.rand(2, 1, 33, 33)
    with torch.no_grad():
        error = relative_error(model(act_on_image(x, get_group("C4").element(1))), model(x))
    assert error > 1e-4


def test_cvt_attention_rows_sum_to_one_and_key_grids_are_the_stride_two_query_grids():
    model = tiny_cvt()
    with torch.no_grad():
        result = model.inspect(torch.rand(2, 1, 33, 33))
    assert set(result.maps) == {"stages.0.tokens", "stages.1.tokens"}
    assert result.maps["stages.0.tokens"].shape == (2, 64, 9, 9)  # 33 -> 9 (7x7, stride 4) -> 5 (stride 2)
    assert result.maps["stages.1.tokens"].shape == (2, 128, 5, 5)
    assert result.features.shape == (2, 128)
    expected = {"stages.0.blocks.0.attention": (2, (9, 9), (5, 5)), "stages.0.blocks.1.attention": (2, (9, 9), (5, 5)),
                "stages.1.blocks.0.attention": (3, (5, 5), (3, 3))}
    assert set(result.attention) == set(expected)
    for name, (heads, query_grid, key_grid) in expected.items():
        attention = result.attention[name]
        assert (attention.query_grid, attention.key_grid) == (query_grid, key_grid)
        assert attention.weights.shape == (2, heads, query_grid[0] * query_grid[1], key_grid[0] * key_grid[1])
        assert torch.allclose(attention.weights.sum(-1), torch.ones(()), atol=1e-5)


def test_explicit_attention_while_capturing_gives_the_logits_of_the_fast_path():
    model, x = tiny_cvt(), torch.rand(2, 1, 33, 33)
    with torch.no_grad():
        fast = model(x)
        captured = model.inspect(x).logits
    assert relative_error(captured, fast) < 1e-5


@pytest.mark.parametrize("group, kernel_size, orbits", [("C4", 3, 3), ("D4", 3, 3), ("C4", 5, 7), ("D4", 5, 6),
                                                         ("C8", 3, 3), ("C2", 3, 5)])
def test_kernel_taps_fall_into_the_orbits_of_the_exact_group_elements(group, kernel_size, orbits):
    orbit = kernel_orbits(kernel_size, get_group(group))
    assert int(orbit.max()) + 1 == orbits
    for g in get_group(group).exact_elements:
        assert torch.equal(act_on_image(orbit, g), orbit)


def test_a_symmetric_conv_has_one_weight_per_kernel_orbit_and_its_kernel_is_invariant():
    conv = OrbitSharedConv2d(4, 6, 3, get_group("D4"), groups=2)
    assert conv.weight.shape == (6, 2, 3) and conv.kernel().shape == (6, 2, 3, 3)
    for g in get_group("D4").exact_elements:
        assert torch.equal(act_on_image(conv.kernel(), g), conv.kernel())


@settings(max_examples=12, deadline=None)
@given(half=st.integers(2, 20), stride=st.sampled_from([1, 2]), group=st.sampled_from(["C4", "D4"]))
def test_a_symmetric_conv_commutes_with_exact_elements_and_keeps_odd_grids_odd(half, stride, group):
    size = 2 * half + 1
    torch.manual_seed(half)
    conv = OrbitSharedConv2d(2, 3, 3, get_group(group), stride=stride)
    x = torch.randn(1, 2, size, size)
    with torch.no_grad():
        y = conv(x)
        assert y.shape[-1] % 2 == 1 and y.shape[-1] in (size, (size + 1) // 2, (size - 1) // 2)
        for g in get_group(group).exact_elements:
            assert relative_error(conv(act_on_image(x, g)), act_on_image(y, g)) < 1e-5
