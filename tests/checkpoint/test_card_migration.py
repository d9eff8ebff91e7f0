"""Format 2 and its one migration (eqlens.checkpoint.card.migrate): a format-1 card is read as format 2
states it, every committed card is at format 2, and rewriting a checkpoint at format 2 keeps its weights
bit for bit and its logits."""

import json
import shutil
from pathlib import Path

import torch

from eqlens.checkpoint import CARD_FILE, ModelCard, load_checkpoint, read_checkpoint, write_checkpoint
from eqlens.checkpoint.card import FORMAT_VERSION, migrate

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
V1 = HERE / "format_v1"  # two committed cards as they were at format 1


def test_a_format_1_card_gains_its_variant_and_keeps_everything_else():
    raw = json.loads((V1 / "model_i_flagship.json").read_text())
    assert raw["format_version"] == 1 and "variant" not in raw["model"]["build_config"]
    migrated = migrate(raw, 1)
    assert migrated["format_version"] == FORMAT_VERSION == 2
    assert migrated["model"]["build_config"]["variant"] == "gcnn_ring_orbit4_c4"
    assert {k: v for k, v in migrated["model"]["build_config"].items() if k != "variant"} == \
        raw["model"]["build_config"]
    assert migrated["data"] == raw["data"]  # it states its simulation config already
    assert raw["format_version"] == 1  # the input is not changed


def test_a_format_1_record_without_simulation_config_states_the_line_vortex_and_a_plain_model_loses_its_group():
    raw = json.loads((V1 / "twin_cnn.json").read_text())
    assert "simulation_config" not in raw["data"] and raw["group"] == "C4"
    card = ModelCard.from_json(raw, "twin_cnn v1")
    assert card.format_version == 2 and card.group is None and "group" not in card.build_config
    assert card.data["simulation_config"]["vortex_model"] == "line"
    assert card.simulation_config.vortex_model == "line" and card.build_config["variant"] == "cnn_base"


def test_every_committed_card_is_at_the_current_format():
    cards = sorted(ROOT.glob("checkpoints/*/model_card.json")) + sorted(ROOT.glob("campaigns/**/model_card.json"))
    assert len(cards) >= 25
    old = [str(p.relative_to(ROOT)) for p in cards if json.loads(p.read_text())["format_version"] != FORMAT_VERSION]
    assert not old, old


def test_rewriting_a_format_1_checkpoint_keeps_its_weights_and_logits(tmp_path):
    import importlib.util

    folder = tmp_path / "model_i_cnn"
    shutil.copytree(ROOT / "checkpoints" / "model_i_cnn", folder)
    tensors, card = read_checkpoint(folder)
    model, _ = load_checkpoint(folder)
    v1 = card.to_json()
    v1["format_version"] = 1
    v1["model"]["build_config"].pop("variant")
    write_checkpoint(folder, model, v1)  # read back as format 2 at once; the side card is put back at 1:
    (folder / CARD_FILE).write_text(json.dumps(v1))
    x = torch.rand(3, 1, card.input.image_size, card.input.image_size, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        before = model.eval()(x)
    spec = importlib.util.spec_from_file_location("migrate_cards", ROOT / "scripts" / "migrate_cards.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    assert script.migrate(folder) is True and script.migrate(folder) is False  # once, then nothing to do
    after_tensors, after_card = read_checkpoint(folder)
    assert after_card.format_version == 2 and json.loads((folder / CARD_FILE).read_text())["format_version"] == 2
    assert all(torch.equal(tensors[k], after_tensors[k]) for k in tensors) and tensors.keys() == after_tensors.keys()
    again, _ = load_checkpoint(folder)
    with torch.no_grad():
        assert torch.equal(again.eval()(x), before)
