"""Named variants: each pins every hyper-parameter and the group, builds the same model as its settings
spelled out, is recorded in the build config, and refuses a card that claims it with other settings."""

from pathlib import Path

import pytest
import torch

from eqlens.checkpoint import read_card
from eqlens.models import create, create_from_config, matching_variant, spec, variant, variant_names
from eqlens.models.registry import builder_defaults

CHECKPOINTS = Path(__file__).resolve().parents[2] / "checkpoints"


@pytest.mark.parametrize("name", variant_names())
def test_a_variant_pins_every_hyper_parameter_of_its_builder(name):
    chosen = variant(name)
    assert set(chosen.settings) == set(builder_defaults(spec(chosen.model).builder))
    assert (chosen.group is not None) == spec(chosen.model).uses_group


def test_a_variant_builds_the_model_its_settings_spell_out_and_says_so():
    torch.manual_seed(0)
    named = create("gcnn_ring_orbit4_c4", num_classes=3, image_size=81)
    torch.manual_seed(0)
    spelled = create("gcnn", num_classes=3, group="C4", image_size=81, widths=[8, 16, 32, 48], lift_stride=2,
                     radial_bins=6, orbit_turns=4)
    assert named.build_config == spelled.build_config
    assert named.build_config["variant"] == "gcnn_ring_orbit4_c4" and named.build_config["name"] == "gcnn"
    x = torch.rand(2, 1, 81, 81)
    with torch.no_grad():
        assert torch.equal(named.eval()(x), spelled.eval()(x))
    assert create_from_config(named.build_config).build_config == named.build_config


def test_settings_no_variant_has_build_an_unnamed_model():
    model = create("gcnn", num_classes=3, group="C4", image_size=33, widths=[4, 8])
    assert "variant" not in model.build_config


def test_a_config_claiming_a_variant_with_other_settings_is_refused_naming_the_setting():
    config = create("gcnn_ring_c4", num_classes=3, image_size=81).build_config
    with pytest.raises(ValueError, match="pins orbit_turns = 1, got 4"):
        create_from_config({**config, "orbit_turns": 4})
    with pytest.raises(ValueError, match="is a 'gcnn', not a 'cnn'"):
        create("cnn", num_classes=3, image_size=81, variant="gcnn_ring_c4")


@pytest.mark.parametrize("folder", sorted(p.name for p in CHECKPOINTS.iterdir() if (p / "model_card.json").exists()))
def test_every_shipped_checkpoint_is_a_named_variant(folder):
    assert matching_variant(read_card(CHECKPOINTS / folder).build_config) is not None


def test_the_averaged_turns_are_a_fact_of_the_model_not_of_a_kwarg_read_by_the_app():
    from eqlens.models import averaged_turns

    assert averaged_turns(read_card(CHECKPOINTS / "model_i_flagship").build_config) == [0.0, 22.5, 45.0, 67.5]
    assert averaged_turns(read_card(CHECKPOINTS / "model_i_flagship_twin").build_config) == []
    assert averaged_turns(create("gcnn_ring_c4", num_classes=3, image_size=81).build_config) == []
