"""Promises of a card's group (issue 14): a plain model has none, so its card names none; a model built for a
group names it; cards written before that (a plain model "in C4") still load, their group dropped on read."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from eqlens import checkpoint as ck
from eqlens.checkpoint import ModelCard
from eqlens.models import create, create_from_config, spec

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = sorted(ROOT.glob("checkpoints/*/model_card.json"))
CLASSES = ["axion", "cdm", "no_sub"]


def _raw(path: Path) -> dict:
    return json.loads(path.read_text())


def _uses_group(raw: dict) -> bool:
    return spec(raw["model"]["build_config"]["name"]).uses_group


def _card(name: str, group: str, training: dict | None = None) -> dict:
    torch.manual_seed(0)
    model = create(name, num_classes=3, group=group, image_size=33)
    return ck.make_card(model, class_names=CLASSES, group=group, data={"spec": "model_i"},
                        training=training or {"complete": True}, input_spec={"image_size": 33})


def _as_written_before_issue_14(card: dict) -> dict:
    """A plain model's card as eqlens wrote it before: "C4" at the top and in the build config."""
    old = json.loads(json.dumps(card))
    old["group"] = "C4"
    old["model"]["build_config"] = {"name": old["model"]["build_config"]["name"], "num_classes": 3, "group": "C4",
                                    **{k: v for k, v in old["model"]["build_config"].items()
                                       if k not in ("name", "num_classes")}}
    return old


def test_a_plain_models_card_names_no_group_and_a_group_models_card_names_its_own():
    plain = _card("cnn", "C8")  # the group passed is not the model's: it has none
    assert plain["group"] is None and "group" not in plain["model"]["build_config"]
    card = ModelCard.from_json(json.loads(json.dumps(plain)))
    assert card.group is None and "group" not in card.build_config
    assert card.to_json()["group"] is None and "group" not in card.to_json()["model"]["build_config"]
    assert create_from_config(card.build_config).build_config == card.build_config  # rebuilds from it
    equivariant = ModelCard.from_json(_card("gcnn", "C8"))
    assert equivariant.group == "C8" and equivariant.build_config["group"] == "C8"
    assert create_from_config(equivariant.build_config).group.name == "C8"


def test_a_card_from_before_issue_14_naming_c4_for_a_plain_model_loads_with_no_group(tmp_path):
    torch.manual_seed(0)
    model = create("cnn", num_classes=3, image_size=33).eval()
    old = _as_written_before_issue_14(ck.make_card(model, class_names=CLASSES, group=None, data={"spec": "model_i"},
                                                   training={"complete": True}, input_spec={"image_size": 33}))
    assert old["group"] == "C4" and old["model"]["build_config"]["group"] == "C4"
    folder = tmp_path / "old"
    folder.mkdir()
    (folder / ck.WEIGHTS_FILE).write_bytes(ck.encode_weights(ck.eval_state_dict(model), old))  # written as then
    (folder / ck.CARD_FILE).write_text(json.dumps(old, indent=2))
    for source in (folder, folder / ck.WEIGHTS_FILE):
        loaded, card = ck.load_checkpoint(source)
        assert card.group is None and "group" not in card.build_config, source
        assert loaded.build_config == card.build_config
        x = torch.rand(2, 1, 33, 33)
        with torch.no_grad():
            assert torch.equal(loaded(x), model(x))
    assert ck.read_card(folder).group is None
    # a model built for a group keeps the C4 an old card gives it
    assert ModelCard.from_json(_as_written_before_issue_14(_card("gcnn", "C4"))).build_config["group"] == "C4"


def test_the_shipped_plain_cards_name_no_group_and_the_others_name_theirs():
    plain = [p for p in SHIPPED if not _uses_group(_raw(p))]
    assert {p.parts[-2] for p in plain} >= {"model_i_cnn", "model_i_cvt", "model_i_vit", "model_i_flagship_twin"}
    for path in SHIPPED:
        raw = _raw(path)
        if _uses_group(raw):
            assert raw["group"] == raw["model"]["build_config"]["group"] == "C4", path
        else:
            assert raw["group"] is None and "group" not in raw["model"]["build_config"], path


@pytest.mark.parametrize(("name", "training", "probe"), [
    ("cnn", {"config": {"group": "C8"}}, "C8"),  # what its run augmented and measured with
    ("cnn", {}, "C4"),                           # a run that says nothing: C4's quarter turns
    ("gcnn", {"config": {"group": "C4"}}, "C8"),  # a group model is probed in its own group
])
def test_the_probe_group_of_the_robustness_measures_is_the_models_own_or_else_the_runs(name, training, probe):
    card = ModelCard.from_json(_card(name, "C8", training))
    assert card.probe_group == probe
