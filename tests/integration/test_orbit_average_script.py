"""scripts/orbit_average_checkpoint.py: the same weights with ``orbit_turns`` set, provenance and a fresh
validation on the card, the source's test dropped, and nothing overwritten."""

from __future__ import annotations

import hashlib
import importlib.util
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[2]


def _script():
    spec = importlib.util.spec_from_file_location("orbit_average_checkpoint",
                                                  ROOT / "scripts" / "orbit_average_checkpoint.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _tiny(folder: Path, model: str = "gcnn") -> None:
    from eqlens.checkpoint import make_card, write_checkpoint
    from eqlens.models import create

    torch.manual_seed(0)
    kwargs = {"widths": [4, 6]} if model == "gcnn" else {}
    net = create(model, num_classes=3, group="C4", image_size=33, **kwargs)
    card = make_card(net, class_names=["axion", "cdm", "no_sub"], group="C4",
                     data={"kind": "simulated", "spec": "model_i", "data_seed": 0, "sizes": {"val": 24, "test": 24}},
                     training={"epochs_done": 1}, metrics={"test": {"n": 24, "accuracy": 0.5}},
                     input_spec={"image_size": 33})
    write_checkpoint(folder, net, card)


def test_the_derived_checkpoint_averages_the_same_weights_and_says_where_they_came_from(tmp_path, monkeypatch):
    from eqlens.checkpoint import load_checkpoint, read_checkpoint

    _tiny(tmp_path / "src")
    monkeypatch.setattr(sys, "argv", ["x", str(tmp_path / "src"), str(tmp_path / "dst"), "--turns", "2"])
    _script().main()
    source, _ = load_checkpoint(tmp_path / "src")
    derived, card = load_checkpoint(tmp_path / "dst")
    assert card.build_config["orbit_turns"] == 2 and derived.orbit_turn_angles() == [0.0, 45.0]
    before, _ = read_checkpoint(tmp_path / "src")
    after, _ = read_checkpoint(tmp_path / "dst")
    assert before.keys() == after.keys() and all(torch.equal(before[k], after[k]) for k in before)
    sha = hashlib.sha256((tmp_path / "src" / "model.safetensors").read_bytes()).hexdigest()
    assert card.training["derived_from"] == {"source": str(tmp_path / "src"), "source_sha256": sha,
                                             "orbit_turns": 2, "trained": False}
    assert set(card.metrics) == {"val"} and card.metrics["val"]["n"] == 24  # the source's test is another model's
    x = torch.rand(2, 1, 33, 33)
    with torch.no_grad():
        assert not torch.allclose(derived.eval()(x), source.eval()(x))


def test_it_refuses_a_full_destination_and_a_model_without_the_option(tmp_path, monkeypatch):
    _tiny(tmp_path / "src")
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "keep.txt").write_text("mine")
    monkeypatch.setattr(sys, "argv", ["x", str(tmp_path / "src"), str(tmp_path / "full"), "--turns", "4"])
    with pytest.raises(SystemExit, match="not empty"):
        _script().main()
    assert (tmp_path / "full" / "keep.txt").read_text() == "mine"
    _tiny(tmp_path / "cnn", model="cnn")
    monkeypatch.setattr(sys, "argv", ["x", str(tmp_path / "cnn"), str(tmp_path / "out"), "--turns", "4"])
    with pytest.raises(SystemExit, match="gcnn option"):
        _script().main()
    assert not (tmp_path / "out").exists()
