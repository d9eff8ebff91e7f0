"""Promises of the plain ViT baseline: sizes, padding, positions, attention maps, gradients, no symmetry."""

import json

import pytest
import torch
import torch.nn.functional as F

from eqlens.models import count_parameters, create, create_from_config, spec
from eqlens.models.vit import PatchEmbedding, PositionEmbedding, SelfAttention

from .registry_cases import random_images

TINY = dict(dim=16, depth=2, heads=2)  # 1/20 of the default model, same code paths


def build(size: int, num_classes: int = 3, seed: int = 0, **kw):
    torch.manual_seed(seed)
    return create("vit", num_classes=num_classes, group="C4", image_size=size, **kw).eval()


def test_vit_is_registered_as_a_plain_model_without_a_group():
    assert not spec("vit").uses_group and not spec("vit").invariant
    model = build(33)
    assert model.group is None and not model.invariant


@pytest.mark.parametrize("size", [16, 24, 21, 33])
def test_images_divisible_by_the_patch_or_not_map_to_class_logits(size):
    model = build(size, num_classes=4)
    with torch.no_grad():
        logits = model(random_images(size, batch=3))
    assert logits.shape == (3, 4)
    assert torch.isfinite(logits).all()


def test_the_default_model_at_129_for_3_classes_has_between_60k_and_120k_parameters():
    model = create("vit", num_classes=3, image_size=129)
    assert 60_000 < count_parameters(model) < 120_000
    assert model.positions.grid == (17, 17)  # 129 padded to 136 = 17 patches of 8


@pytest.mark.parametrize("size, before, after", [(20, 2, 2), (21, 1, 2), (24, 0, 0)])
def test_sides_not_divisible_by_the_patch_are_zero_padded_evenly_on_both_sides(size, before, after):
    torch.manual_seed(0)
    embed = PatchEmbedding(patch_size=8, dim=5)
    x = torch.rand(2, 1, size, size)
    padded = F.pad(x, (before, after, before, after))
    expected = F.conv2d(padded, embed.project.weight, embed.project.bias, stride=8)
    assert expected.shape[-2:] == (3, 3)
    torch.testing.assert_close(embed(x), expected)


def test_the_position_table_is_used_as_is_on_its_grid_and_resized_bicubically_on_others():
    positions = PositionEmbedding((5, 5), dim=4)
    assert positions(5, 5) is positions.table
    reference = F.interpolate(positions.table.detach().transpose(1, 2).reshape(1, 4, 5, 5), size=(7, 3),
                              mode="bicubic", align_corners=False)
    torch.testing.assert_close(positions(7, 3).detach(), reference.flatten(2).transpose(1, 2))
    with torch.no_grad():
        positions.table.copy_(torch.arange(4.0).expand(1, 25, 4))  # the same position everywhere
    torch.testing.assert_close(positions(7, 3), torch.arange(4.0).expand(1, 21, 4))


def test_a_model_takes_images_of_another_size_and_shape_than_it_was_built_for():
    model = build(33, **TINY)
    with torch.no_grad():
        for height, width in [(49, 49), (17, 26), (33, 40)]:
            inspection = model.inspect(torch.rand(2, 1, height, width))
            assert inspection.logits.shape == (2, 3)
            grid = (-(-height // 8), -(-width // 8))
            assert inspection.maps["tokens"].shape == (2, 16, *grid)
            assert all(a.query_grid == grid for a in inspection.attention.values())


def test_inspect_gives_patch_to_patch_attention_rows_summing_to_one_on_the_patch_grid():
    model = build(33)  # 33 -> 40 padded -> 5 x 5 patches
    with torch.no_grad():
        inspection = model.inspect(random_images(33, batch=2))
    assert sorted(inspection.attention) == [f"blocks.{i}.attention" for i in range(4)]
    for name, attention in inspection.attention.items():
        assert attention.weights.shape == (2, 3, 25, 25), name
        assert attention.query_grid == attention.key_grid == (5, 5), name
        torch.testing.assert_close(attention.weights.sum(-1), torch.ones(2, 3, 25))
        assert (attention.weights >= 0).all()
    assert inspection.maps["tokens"].shape == (2, 48, 5, 5)
    assert inspection.features.shape == (2, 48)


def test_the_explicit_attention_of_inspect_gives_the_same_logits_as_the_fast_path():
    model, x = build(33), random_images(33)
    with torch.no_grad():
        torch.testing.assert_close(model.inspect(x).logits, model(x), rtol=1e-5, atol=1e-5)
    assert all(not m.capture_attention for m in model.attention_modules().values())


def test_recorded_attention_drops_the_class_token_and_renormalises_each_row():
    attention = SelfAttention(dim=4, heads=1)
    weights = torch.tensor([[0.4, 0.3, 0.3], [0.5, 0.1, 0.4], [0.0, 0.25, 0.75]]).reshape(1, 1, 3, 3)
    expected = torch.tensor([[0.2, 0.8], [0.25, 0.75]]).reshape(1, 1, 2, 2)
    torch.testing.assert_close(attention.patch_to_patch(weights), expected)


def test_a_backward_pass_reaches_every_parameter_including_positions_and_class_token():
    model = build(21, **TINY).train()
    loss = F.cross_entropy(model(random_images(21, batch=3)), torch.tensor([0, 1, 2]))
    loss.backward()
    for name, parameter in model.named_parameters():
        assert parameter.grad is not None and torch.isfinite(parameter.grad).all(), name
        assert parameter.grad.abs().sum() > 0, name


def test_the_logits_change_under_a_quarter_turn_of_the_input():
    model, x = build(33), random_images(33)
    with torch.no_grad():
        error = (model(torch.rot90(x, 1, dims=(-2, -1))) - model(x)).abs().max().item()
    assert error > 1e-4


def test_the_build_config_with_custom_widths_rebuilds_a_model_that_loads_the_state_dict():
    model = build(21, num_classes=2, patch_size=4, mlp_ratio=3, **TINY)
    rebuilt = create_from_config(json.loads(json.dumps(model.build_config))).eval()
    rebuilt.load_state_dict(model.state_dict())
    x = random_images(21)
    with torch.no_grad():
        torch.testing.assert_close(rebuilt(x), model(x), rtol=0, atol=0)
    assert rebuilt.positions.grid == (6, 6) and len(rebuilt.blocks) == 2
