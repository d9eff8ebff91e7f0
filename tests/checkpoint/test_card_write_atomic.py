"""Issue 24 (issue item 7, third bullet): checkpoint writes never lie. A kill between the weights and the
side card never shows a card of other weights (every reader takes the card embedded in the weights), a full
disk is a CheckpointError that says so and keeps every file already there whole, and the temporary files a
killed write leaves are removed when the run resumes."""

from __future__ import annotations

import errno
import os

import pytest
import torch

from eqlens import checkpoint as ck
from eqlens.core import jsonio
from eqlens.core.run_config import TrainConfig
from eqlens.errors import CheckpointError
from eqlens.models import create
from tests.training.conftest import TINY_CNN


class Killed(BaseException):
    """A kill -9 at that point: nothing after it runs, no handler sees it."""


def _model(seed: int):
    torch.manual_seed(seed)
    return create("cnn", num_classes=3, image_size=24, **TINY_CNN)


def _card(model, epoch: int, metrics: dict) -> dict:
    return ck.make_card(model, class_names=["a", "b", "c"], group="C4", data={"spec": "blobs"},
                        training={"complete": epoch == 3, "best_epoch": epoch}, metrics=metrics)


def _kill_when_writing(monkeypatch, name: str):
    real = jsonio.atomic_write_bytes

    def write(path, data):
        if os.path.basename(path) == name:
            raise Killed(name)
        real(path, data)

    monkeypatch.setattr(ck.io, "atomic_write_bytes", write)


def test_a_kill_between_the_weights_and_the_side_card_never_shows_the_old_card(tmp_path, monkeypatch):
    ck.write_checkpoint(tmp_path, _model(1), _card(_model(1), 1, {"val": {"accuracy": 0.4}}))
    newer = _model(3)
    _kill_when_writing(monkeypatch, ck.CARD_FILE)
    with pytest.raises(Killed):
        ck.write_checkpoint(tmp_path, newer, _card(newer, 3, {"val": {"accuracy": 0.9}, "test": {"accuracy": 0.8}}))
    card = ck.read_card(tmp_path)  # what the app lists, without reading the tensors
    assert card.training["best_epoch"] == 3 and card.complete and card.metrics["test"] == {"accuracy": 0.8}
    tensors, loaded_card = ck.read_checkpoint(tmp_path)
    assert loaded_card.to_json() == card.to_json()
    assert all(torch.equal(tensors[k], v) for k, v in ck.eval_state_dict(newer).items())


def _fail_fsync_with_enospc(monkeypatch):
    def fsync(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(jsonio.os, "fsync", fsync)


def test_a_full_disk_is_a_checkpoint_error_and_the_previous_checkpoint_stays_whole(tmp_path, monkeypatch):
    first = _model(1)
    ck.write_checkpoint(tmp_path, first, _card(first, 1, {}))
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    _fail_fsync_with_enospc(monkeypatch)
    with pytest.raises(CheckpointError, match=r"the disk is full.*kept whole"):
        ck.write_checkpoint(tmp_path, _model(2), _card(_model(2), 2, {}))
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before  # no temporary left, nothing changed
    monkeypatch.undo()
    _, card = ck.load_checkpoint(tmp_path)
    assert card.training["best_epoch"] == 1


def test_a_full_disk_while_writing_last_keeps_the_previous_epoch_resumable(tmp_path, monkeypatch):
    first = _model(1)
    ck.write_last(tmp_path, first, _card(first, 1, {}), {"format": ck.FORMAT, "epoch": 1})
    _fail_fsync_with_enospc(monkeypatch)
    with pytest.raises(CheckpointError, match="the disk is full"):
        ck.write_last(tmp_path, _model(2), _card(_model(2), 2, {}), {"format": ck.FORMAT, "epoch": 2})
    monkeypatch.undo()
    assert ck.find_last(tmp_path) == tmp_path / ck.LAST_DIR
    assert ck.load_state(ck.find_last(tmp_path))["epoch"] == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == [ck.LAST_DIR]


def test_a_resumed_run_removes_the_temporary_files_a_killed_write_left_and_nothing_else(tmp_path):
    from eqlens.training import resume

    model = _model(1)
    ck.write_checkpoint(tmp_path, model, _card(model, 1, {}))
    (tmp_path / ck.LAST_DIR).mkdir()
    stale = [tmp_path / f".{ck.WEIGHTS_FILE}.4242.deadbeef.tmp", tmp_path / f".{ck.CARD_FILE}.7.0.tmp",
             tmp_path / ck.LAST_DIR / f".{ck.STATE_FILE}.4242.0.tmp"]
    for path in stale:
        path.write_bytes(b"half a file")
    kept = [tmp_path / "notes.tmp", tmp_path / ".other.safetensors.1.tmp", tmp_path / ck.WEIGHTS_FILE]
    kept[0].write_text("mine")
    kept[1].write_text("not ours")
    config = TrainConfig(model="cnn", data="blobs", out=str(tmp_path), resume=True, model_kwargs=TINY_CNN)
    # killed during the first epoch's writes: no last/ state yet, so nothing else is read or loaded
    resume.resume_run(tmp_path, config, {}, model, None, None, None, writes=True)
    assert not any(path.exists() for path in stale)
    assert all(path.exists() for path in kept)
