"""Promises of eqlens.checkpoint: round trips keep the logits, and anything that is not an
intact eqlens checkpoint raises CheckpointError (never unpickles an object)."""

import io
import json
import os

import pytest
import torch
from safetensors.torch import save as save_safetensors

from eqlens import checkpoint as ck
from eqlens.errors import CheckpointError
from eqlens.models import create
from tests.training.conftest import TINY_CNN


def _model(seed=0):
    torch.manual_seed(seed)
    return create("cnn", num_classes=2, group="C4", image_size=24, **TINY_CNN)


def _card(model):
    return ck.make_card(model, class_names=["no_sub", "sub"], group="C4", data={"spec": "blobs"},
                        training={}, input_spec={"image_size": 24, "circular_mask": True})


@pytest.fixture
def saved(tmp_path):
    model = _model()
    model.train()
    ck.write_checkpoint(tmp_path / "ckpt", model, _card(model))
    return model, tmp_path / "ckpt"


def _logits(model, x):
    with torch.no_grad():
        return model.eval()(x)


def test_a_saved_checkpoint_gives_the_same_logits_from_a_directory_a_file_and_bytes(saved):
    model, path = saved
    x = torch.rand(3, 1, 24, 24)
    expected = _logits(model, x)
    for source in (path, path / ck.WEIGHTS_FILE, (path / ck.WEIGHTS_FILE).read_bytes(),
                   io.BytesIO((path / ck.WEIGHTS_FILE).read_bytes())):
        loaded, card = ck.load_checkpoint(source)
        assert not loaded.training
        assert card.class_names == ("no_sub", "sub")
        torch.testing.assert_close(_logits(loaded, x), expected, rtol=0, atol=0)


def test_saving_leaves_the_model_in_its_training_mode(tmp_path):
    m = _model()
    m.train()
    ck.write_checkpoint(tmp_path / "ckpt", m, _card(m))
    assert m.training
    ck.eval_state_dict(m)
    assert m.training


def test_the_single_file_carries_its_card_and_stays_small(saved):
    _, path = saved
    data = (path / ck.WEIGHTS_FILE).read_bytes()
    assert ck.embedded_card(data) == json.loads((path / ck.CARD_FILE).read_text())
    assert len(data) < 10 * 2**20


def test_random_bytes_raise_checkpoint_error():
    with pytest.raises(CheckpointError):
        ck.load_checkpoint(os.urandom(4096))


def test_a_truncated_file_raises_checkpoint_error(saved, tmp_path):
    _, path = saved
    data = (path / ck.WEIGHTS_FILE).read_bytes()
    for cut in (4, 100, len(data) // 2, len(data) - 7):
        target = tmp_path / f"cut{cut}.safetensors"
        target.write_bytes(data[:cut])
        with pytest.raises(CheckpointError):
            ck.load_checkpoint(target)


def test_weights_of_another_model_raise_checkpoint_error(tmp_path):
    small, other = _model(), create("cnn", num_classes=2, group="C4", image_size=24, widths=[4, 8, 16])
    card = _card(small)
    foreign = save_safetensors(ck.eval_state_dict(other), metadata={ck.CARD_METADATA_KEY: json.dumps(card)})
    with pytest.raises(CheckpointError, match="do not fit"):
        ck.load_checkpoint(foreign)
    renamed = {f"x.{k}": v for k, v in ck.eval_state_dict(small).items()}
    with pytest.raises(CheckpointError, match="do not fit"):
        ck.load_checkpoint(save_safetensors(renamed, metadata={ck.CARD_METADATA_KEY: json.dumps(card)}))


def test_a_safetensors_file_without_our_card_raises_checkpoint_error(tmp_path):
    plain = save_safetensors(ck.eval_state_dict(_model()))
    with pytest.raises(CheckpointError, match="not an eqlens checkpoint"):
        ck.load_checkpoint(plain)
    foreign = save_safetensors(ck.eval_state_dict(_model()),
                               metadata={ck.CARD_METADATA_KEY: json.dumps({"format": "something-else"})})
    with pytest.raises(CheckpointError, match="not an eqlens checkpoint"):
        ck.load_checkpoint(foreign)


def test_a_card_from_a_newer_format_raises_checkpoint_error(saved):
    model, _ = saved
    card = {**_card(model), "format_version": ck.FORMAT_VERSION + 1}
    data = save_safetensors(ck.eval_state_dict(model), metadata={ck.CARD_METADATA_KEY: json.dumps(card)})
    with pytest.raises(CheckpointError, match="newer"):
        ck.load_checkpoint(data)


class _Bomb:
    def __reduce__(self):
        return (os.system, ("touch pwned",))


def test_a_pickle_with_objects_is_refused_without_running_it(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    buffer = io.BytesIO()
    torch.save({"weight": torch.zeros(2), "payload": _Bomb()}, buffer)
    (tmp_path / "model.pt").write_bytes(buffer.getvalue())
    for source in (buffer.getvalue(), tmp_path / "model.pt"):
        with pytest.raises(CheckpointError, match="refusing"):
            ck.load_checkpoint(source)
    state_dir = tmp_path / "last"
    state_dir.mkdir()
    (state_dir / ck.STATE_FILE).write_bytes(buffer.getvalue())
    with pytest.raises(CheckpointError):
        ck.load_state(state_dir)
    assert not (tmp_path / "pwned").exists()


def test_a_missing_checkpoint_raises_checkpoint_error(tmp_path):
    with pytest.raises(CheckpointError, match="not found"):
        ck.load_checkpoint(tmp_path / "nothing")


def test_rng_states_survive_a_weights_only_round_trip(tmp_path):
    import random

    import numpy as np

    state = ck.capture_rng_state()
    expected = (torch.rand(3), np.random.rand(3), random.random())
    buffer = io.BytesIO()
    torch.save(state, buffer)
    ck.restore_rng_state(torch.load(io.BytesIO(buffer.getvalue()), weights_only=True))
    assert torch.equal(torch.rand(3), expected[0])
    assert np.array_equal(np.random.rand(3), expected[1])
    assert random.random() == expected[2]


def test_a_kill_between_the_renames_of_last_still_leaves_a_resumable_checkpoint(tmp_path):
    model = _model()
    state = {"format": ck.FORMAT, "epoch": 1}
    ck.write_last(tmp_path, model, _card(model), state)
    assert ck.find_last(tmp_path) == tmp_path / ck.LAST_DIR
    ck.write_checkpoint(tmp_path / "last.new", model, _card(model), {**state, "epoch": 2})
    os.replace(tmp_path / ck.LAST_DIR, tmp_path / "last.old")  # killed right here
    assert ck.find_last(tmp_path) == tmp_path / "last.new"
    assert ck.load_state(ck.find_last(tmp_path))["epoch"] == 2
    ck.write_last(tmp_path, model, _card(model), {**state, "epoch": 3})
    assert sorted(p.name for p in tmp_path.iterdir()) == [ck.LAST_DIR]
    assert ck.load_state(tmp_path / ck.LAST_DIR)["epoch"] == 3
