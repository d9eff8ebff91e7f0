"""Promises of eqlens.checkpoint.ModelCard: it is the one reader of a card's JSON, validated once, typed and
frozen; every card on disk loads and round-trips; a missing field has one default, read the same everywhere."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
import torch

from eqlens import checkpoint as ck
from eqlens.checkpoint import ModelCard
from eqlens.core.tasks import TargetScaler
from eqlens.data.splits import data_spec_now
from eqlens.data.transforms import InputSpec
from eqlens.errors import CheckpointError
from eqlens.models import create, spec
from eqlens.simulation import get_config

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = sorted([*ROOT.glob("checkpoints/*/model_card.json"), *ROOT.glob("campaigns/**/model_card.json")])


def _model():
    torch.manual_seed(0)
    return create("cnn", num_classes=3, group="C4", image_size=24, widths=[4, 8])


def _json(**input_record) -> dict:
    record = input_record or {"image_size": 24, "circular_mask": True}
    return ck.make_card(_model(), class_names=["axion", "cdm", "no_sub"], group="C4", data={"spec": "model_i"},
                        training={"complete": True}, input_spec=record)


def test_shipped_cards_exist_to_be_checked():
    assert len([p for p in SHIPPED if p.parts[-3] == "checkpoints"]) >= 8


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_card_on_disk_loads_and_round_trips(path):
    raw = json.loads(path.read_text())
    card = ModelCard.from_json(raw, str(path))
    if not spec(raw["model"]["name"]).uses_group:  # a plain model has no group (older cards said "C4": dropped)
        raw["group"] = None
        raw["model"]["build_config"].pop("group", None)
    assert card.name == raw["model"]["name"] and card.build_config == raw["model"]["build_config"]
    assert card.class_names == tuple(raw["class_names"]) and card.group == raw.get("group")
    assert card.input.image_size == raw["input"]["image_size"]
    again = card.to_json()
    assert ModelCard.from_json(again).to_json() == again
    # nothing is lost or changed: only what the card left out is filled in (an older card's task)
    assert {k: v for k, v in again.items() if k != "task"} == {k: v for k, v in raw.items() if k != "task"}
    assert again["task"] == raw.get("task", {"name": "classification"})


def test_the_card_is_typed_and_frozen():
    card = ModelCard.from_json(_json(), "test")
    assert isinstance(card.input, InputSpec) and card.class_names == ("axion", "cdm", "no_sub")
    assert card.task == "classification" and card.scaler is None and card.num_outputs == 3
    with pytest.raises(dataclasses.FrozenInstanceError):
        card.name = "vit"


def test_the_card_shares_nothing_mutable_with_the_json_it_was_read_from():
    raw = _json()
    card = ModelCard.from_json(raw)
    raw["model"]["build_config"]["name"] = "vit"
    raw["metrics"]["test"] = {"accuracy": 1.0}
    assert card.build_config["name"] == "cnn" and "test" not in card.metrics
    card.to_json()["training"]["complete"] = False
    assert card.training["complete"] is True


@pytest.mark.parametrize("path, value, says", [
    (("class_names",), "axion", "lacks class_names"),
    (("model", "parameters"), "many", "model.parameters must be a count"),
    (("created",), 20261202, "created must be text"),
    (("input", "crop"), "81", "crop must be an integer"),
    (("input", "circular_mask"), "yes", "circular_mask must be true or false"),
    (("model", "build_config", "image_size"), 4096, "image_size must be an integer in \\[1, 512\\]"),
    (("task",), {"name": "axion_mass"}, "no valid target normalisation"),
])
def test_a_field_of_the_wrong_type_or_range_is_a_checkpoint_error_naming_it(path, value, says):
    raw = _json()
    *parents, last = path
    node = raw
    for key in parents:
        node = node[key]
    node[last] = value
    with pytest.raises(CheckpointError, match=f"^upload: .*{says}"):
        ModelCard.from_json(raw, "upload")


def test_a_missing_circular_mask_means_the_mask_as_training_has_always_written_it():
    # TrainConfig.circular_mask has defaulted to True since the first trainer, and every card it wrote says so
    from eqlens.core.run_config import TrainConfig

    assert TrainConfig.circular_mask is True
    card = ModelCard.from_json(_json(image_size=24))
    assert card.input.circular_mask is True
    no_input = _json()
    del no_input["input"]
    assert ModelCard.from_json(no_input).input == InputSpec(24, None, True)
    assert ModelCard.from_json(_json(image_size=24, circular_mask=False)).input.circular_mask is False


def test_a_missing_circular_mask_is_read_the_same_by_loading_generalisation_and_predict(tmp_path):
    from eqlens.experiments.generalisation import load_for_shifts

    model = _model()
    ck.write_checkpoint(tmp_path / "ckpt", model, _json(image_size=24))
    on_disk = json.loads((tmp_path / "ckpt" / ck.CARD_FILE).read_text())
    assert on_disk["input"]["circular_mask"] is True  # written complete: nobody needs the default again
    del on_disk["input"]["circular_mask"]  # a card from elsewhere that says nothing
    single = tmp_path / "upload.safetensors"
    single.write_bytes(ck.encode_weights(ck.eval_state_dict(model), on_disk))
    _, card = ck.load_checkpoint(single)
    assert card.input.circular_mask is True
    (loaded,) = load_for_shifts([single], "cpu", base="model_i")
    assert loaded.mask is True
    x = torch.ones(2, 24, 24)
    unmasked = model.eval()(torch.ones(2, 1, 24, 24)).softmax(-1)
    assert not torch.allclose(ck.predict(model, card, x).values, unmasked)  # the corners were masked


def test_prepare_is_the_input_specs_and_decode_gives_probabilities_or_physical_values():
    card = ModelCard.from_json(_json(image_size=24, crop=40, circular_mask=True))
    raw = torch.rand(2, 60, 60) * 100
    assert torch.equal(card.prepare(raw), InputSpec(24, 40, True).prepare(raw))
    logits = torch.tensor([[0.0, 1.0, 2.0], [3.0, 3.0, 3.0]])
    assert torch.allclose(card.decode(logits), logits.softmax(-1))
    regression = _json()
    regression["class_names"] = ["log10_axion_mass"]
    regression["model"]["build_config"]["num_classes"] = 1
    regression["task"] = {"name": "axion_mass", "normalisation": {"mean": -23.0, "std": 0.5}}
    card = ModelCard.from_json(regression)
    assert card.scaler == TargetScaler(-23.0, 0.5) and card.unit == card.task_record["unit"]
    assert torch.equal(card.decode(torch.tensor([[0.0], [2.0]])), torch.tensor([-23.0, -22.0], dtype=torch.float64))


def test_replace_makes_a_changed_card_and_validates_it():
    card = ModelCard.from_json(_json())
    tested = card.replace(metrics={**card.metrics, "test": {"accuracy": 0.9}})
    assert tested.metrics["test"] == {"accuracy": 0.9} and "test" not in card.metrics
    with pytest.raises(CheckpointError, match="class names"):
        card.replace(class_names=("a", "b"))


def test_read_card_reads_a_folders_card_without_its_weights_and_refuses_a_bad_one(tmp_path):
    model = _model()
    ck.write_checkpoint(tmp_path / "ckpt", model, _json())
    card = ck.read_card(tmp_path / "ckpt")
    assert card.to_json() == ck.read_checkpoint(tmp_path / "ckpt")[1].to_json()
    assert ck.read_card(tmp_path / "ckpt" / ck.CARD_FILE).name == "cnn"
    with pytest.raises(CheckpointError, match="no readable model card"):
        ck.read_card(tmp_path / "missing")
    (tmp_path / "ckpt" / ck.CARD_FILE).write_text("{not json")
    with pytest.raises(CheckpointError, match="not JSON"):
        ck.read_card(tmp_path / "ckpt")
    (tmp_path / "ckpt" / ck.CARD_FILE).write_text(json.dumps({"format": "other"}))
    with pytest.raises(CheckpointError, match="not an eqlens checkpoint"):
        ck.read_card(tmp_path / "ckpt")


def _card_with_data(data: dict) -> ModelCard:
    return ModelCard.from_json(ck.make_card(_model(), class_names=["axion", "cdm", "no_sub"], group="C4", data=data,
                                            training={"complete": True}, input_spec={"image_size": 24}))


def test_a_card_without_a_simulation_config_resolves_to_the_line_vortex_of_its_day():
    # Every card written before 2026-12-02 names only its config; the simulator then drew the vortex as a line.
    line = get_config("model_i_line")
    assert line == dataclasses.replace(get_config("model_i"), name="model_i_line", vortex_model="line")
    for data in ({"kind": "simulated", "spec": "model_i", "data_seed": 0}, {"spec": "model_i"}):
        card = _card_with_data(data)
        assert card.simulation_config == line
        assert data_spec_now(card.data) == "model_i_line"
    # a config without a vortex class never depended on the form
    assert _card_with_data({"kind": "simulated", "spec": "binary"}).simulation_config == get_config("binary")
    assert _card_with_data({"kind": "folder", "spec": "/data/Model_I"}).simulation_config is None


def test_a_card_with_a_simulation_config_resolves_to_what_it_says():
    for name in ("model_i", "model_i_line"):
        config = get_config(name)
        card = _card_with_data({"kind": "simulated", "spec": "model_i", "simulation_config": config.to_dict()})
        assert card.simulation_config == config
        assert data_spec_now(card.data) == name
        assert ModelCard.from_json(json.loads(json.dumps(card.to_json()))).simulation_config == config
    with pytest.raises(CheckpointError, match="simulation_config"):
        _card_with_data({"kind": "simulated", "spec": "model_i", "simulation_config": {"vortex_model": "ring"}})


@pytest.mark.parametrize("path", [p for p in SHIPPED if p.parts[-3] == "checkpoints"], ids=lambda p: p.parts[-2])
def test_each_shipped_checkpoint_resolves_to_the_vortex_it_was_trained_on(path):
    """Every card states its simulation config (format 2). The small-budget checkpoints were trained on the
    closed-form line vortex, which their format-1 cards left unsaid; the campaign checkpoints (the flagship,
    cvt, eqcvt, the twin, the binary flagship) on model_i's recipe vortex, 100 point masses."""
    card = ck.read_card(path)
    points = path.parts[-2] in ("model_i_flagship", "model_i_cvt", "model_i_flagship_twin", "binary_flagship",
                                "model_i_eqcvt", "model_i_varied_flagship", "model_i_varied_twin")
    assert "simulation_config" in card.data
    if "axion" in card.class_names:
        assert card.simulation_config.vortex_model == ("points" if points else "line")


def test_train_config_is_the_runs_record_with_todays_defaults_or_none():
    from eqlens.checkpoint import read_card

    card = read_card(ROOT / "checkpoints" / "model_i_flagship")
    config = card.train_config
    assert (config.model, config.epochs, config.augment_mode, config.steps_per_epoch) == ("gcnn", 16, "mixed", 400)
    training = dict(card.training, config={"model": "gcnn", "lr": 1e-3})
    assert card.replace(training=training).train_config.augment  # left out: today's default, on
    assert card.replace(training=dict(card.training, config={"model": "gcnn", "schedule": "zigzag"})
                        ).train_config is None
    assert card.replace(training={}).train_config is None
