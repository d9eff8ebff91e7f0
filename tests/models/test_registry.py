"""Promises of the model registry, for every registered model: build, shapes, inspection, rebuild."""

import json

import pytest
import torch

from eqlens.groups import get_group
from eqlens.models import LensModel, create, create_from_config, names, spec

from .registry_cases import build, model_cases, random_images, tiny_size

ONE_GROUP = model_cases(groups=("C4",))


def test_the_baselines_are_registered_under_their_own_names():
    assert {"cnn", "resnet18"} <= set(names())
    assert all(spec(name).name == name for name in names())


@pytest.mark.parametrize("name, group", ONE_GROUP)
def test_each_model_maps_images_of_a_couple_of_sizes_to_class_logits(name, group):
    small = tiny_size(name)
    for size in (small, small + 9):  # one odd, one even side
        model = build(name, group, size=size, num_classes=4)
        with torch.no_grad():
            logits = model(random_images(size, batch=3))
        assert logits.shape == (3, 4), size
        assert torch.isfinite(logits).all(), size


@pytest.mark.parametrize("name, group", ONE_GROUP)
def test_each_model_states_its_symmetry_as_its_spec_does(name, group):
    model = build(name, group)
    assert isinstance(model, LensModel)
    assert model.invariant == spec(name).invariant
    if spec(name).uses_group:
        assert model.group == get_group(group)


@pytest.mark.parametrize("name, group", model_cases(groups=("C4", "D4")))
def test_inspect_gives_pre_logit_features_and_group_channels_with_the_group_axis(name, group):
    model, size = build(name, group), tiny_size(name)
    with torch.no_grad():
        inspection = model.inspect(random_images(size, batch=2))
    assert inspection.logits.shape == (2, 3)
    assert inspection.features is not None and inspection.features.dim() == 2
    assert inspection.features.shape[0] == 2
    for tap_name, channels in inspection.group_channels.items():
        assert channels.dim() == 5 and channels.shape[0] == 2, tap_name
        assert channels.shape[2] == get_group(group).order, tap_name
    if spec(name).uses_group:
        assert inspection.group_channels, "a model built for a group exposes at least one group tap"


@pytest.mark.parametrize("name, group", ONE_GROUP)
def test_the_build_config_is_plain_json_that_rebuilds_an_identical_model(name, group):
    model = build(name, group)
    config = json.loads(json.dumps(model.build_config))
    rebuilt = create_from_config(config).eval()
    original_shapes = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    assert {k: tuple(v.shape) for k, v in rebuilt.state_dict().items()} == original_shapes
    rebuilt.load_state_dict(model.state_dict())
    x = random_images(tiny_size(name))
    with torch.no_grad():
        torch.testing.assert_close(rebuilt(x), model(x), rtol=0, atol=0)


@pytest.mark.parametrize("name", names())
def test_only_a_model_built_for_a_group_records_one_a_plain_model_ignores_the_group_passed(name):
    size = tiny_size(name)
    model = create(name, group="C8", image_size=size)
    if spec(name).uses_group:
        assert model.build_config["group"] == "C8" and model.group == get_group("C8")
        assert create_from_config(model.build_config).group == get_group("C8")
    else:
        assert "group" not in model.build_config and model.group is None
        assert create(name, group="D4", image_size=size).build_config == model.build_config
        # a build config from before issue 14 said "C4" for a plain model: it rebuilds, recording none
        assert create_from_config({**model.build_config, "group": "C4"}).build_config == model.build_config


def test_unknown_names_and_groups_raise_value_error():
    with pytest.raises(ValueError, match="unknown model"):
        create("no_such_model")
    with pytest.raises(ValueError, match="unknown group"):
        create("cnn", group="Q4")
    with pytest.raises(ValueError, match="num_classes"):
        create("cnn", num_classes=0)


@pytest.mark.parametrize("name", names())
def test_each_model_refuses_images_below_its_smallest_size(name):
    with pytest.raises(ValueError, match="smallest size"):
        create(name, image_size=spec(name).min_image_size - 1)


def test_resnet18_has_the_published_size_and_a_map_tap_after_each_stage():
    model = build("resnet18", "C4", size=33)
    assert 11_000_000 < sum(p.numel() for p in model.parameters()) < 11_300_000
    with torch.no_grad():
        inspection = model.inspect(random_images(33))
    assert [tuple(m.shape[1:]) for m in inspection.maps.values()] == [(64, 9, 9), (128, 5, 5), (256, 3, 3), (512, 2, 2)]
    assert inspection.features.shape == (2, 512)


def test_a_build_config_states_every_hyper_parameter_so_a_changed_default_cannot_change_a_rebuilt_model(monkeypatch):
    from eqlens.models import create_from_config
    from eqlens.models import gcnn as gcnn_module

    model = create("gcnn", num_classes=3, group="C4", image_size=17)
    config = model.build_config
    assert config["group_pool"] == "max" and config["widths"] == [16, 24, 32, 32] and config["lift_stride"] == 1
    defaults = list(gcnn_module.build_gcnn.__defaults__)
    defaults[defaults.index("max")] = "mean"  # tomorrow's default
    monkeypatch.setattr(gcnn_module.build_gcnn, "__defaults__", tuple(defaults))
    assert create("gcnn", num_classes=3, group="C4", image_size=17).group_pool.reduction == "mean"
    assert create_from_config(config).group_pool.reduction == "max"
