"""Issue 13, items 5, 6 and 13: what a training run leaves on disk tells the truth. Non-finite weights are
never selected nor written, the best checkpoint and its card agree after a crash between the writes of
an epoch, and the card says whether the run finished (``training.complete``)."""

from __future__ import annotations

import json

import pytest
import torch

from eqlens import checkpoint as ck
from eqlens.core.run_config import TrainConfig
from eqlens.errors import TrainingError
from eqlens.training import reporting, train
from eqlens.training.epoch_loop import EpochLoop

from .conftest import TINY_CNN, assert_same_checkpoints, blob_splits


def _config(out, **kw):
    base = dict(model="cnn", data="blobs", out=str(out), epochs=3, batch_size=4, lr=3e-3, robustness_size=0,
                model_kwargs=TINY_CNN, select_on="val_loss")
    return TrainConfig(**{**base, **kw})


def _poison_after_epoch(monkeypatch, poisoned_epoch: int, name_end: str):
    """The model's first tensor whose name ends with ``name_end`` becomes inf when ``poisoned_epoch``'s
    steps are done, before its validation (as a huge step or an inf running variance would leave it)."""
    original = EpochLoop.train_epoch

    def train_epoch(self, net, epoch):
        finished = original(self, net, epoch)
        if epoch == poisoned_epoch:
            tensors = dict(self.model.named_parameters()) | dict(self.model.named_buffers())
            with torch.no_grad():
                next(t for n, t in tensors.items() if n.endswith(name_end)).view(-1)[0] = float("inf")
        return finished

    monkeypatch.setattr(EpochLoop, "train_epoch", train_epoch)


@pytest.mark.parametrize("name_end", ["running_var", "weight"])
def test_non_finite_weights_stop_the_run_and_the_last_good_best_stays(tmp_path, monkeypatch, name_end):
    out = tmp_path / "run"
    _poison_after_epoch(monkeypatch, 2, name_end)
    with pytest.raises(TrainingError, match="not finite after epoch 2") as caught:
        train(_config(out), data=blob_splits())
    assert name_end in str(caught.value) and "lower --lr" in str(caught.value)
    model, card = ck.load_checkpoint(out)  # loadable: no NaN or inf was written
    assert card.training["best_epoch"] == 1
    last_model, last_card = ck.load_checkpoint(ck.find_last(out))
    assert last_card.training["epoch"] == 1
    assert ck.load_state(ck.find_last(out))["epoch"] == 1


def _crash_writing_the_best_of_epoch(monkeypatch, out, epoch: int, error=OSError("No space left on device")):
    """The best checkpoint write of ``epoch`` into ``out`` fails (a kill or a full disk there)."""
    original = ck.write_checkpoint
    crashed = []

    def write_checkpoint(directory, model, card, state=None):
        if str(directory) == str(out) and card["training"]["epoch"] == epoch and not crashed:
            crashed.append(epoch)
            raise error
        return original(directory, model, card, state)

    monkeypatch.setattr(ck, "write_checkpoint", write_checkpoint)
    return crashed


def test_a_crash_between_last_and_the_best_checkpoint_resumes_to_the_uninterrupted_result(tmp_path, monkeypatch):
    whole = train(_config(tmp_path / "whole"), data=blob_splits())
    crash_epoch = whole.best_epoch  # the last improvement: no later epoch rewrites the best
    assert crash_epoch >= 2, "the test needs an improvement after epoch 1"

    out = tmp_path / "crashed"
    crashed = _crash_writing_the_best_of_epoch(monkeypatch, out, crash_epoch)
    with pytest.raises(OSError):
        train(_config(out), data=blob_splits())
    assert crashed == [crash_epoch]
    assert ck.load_state(ck.find_last(out))["epoch"] == crash_epoch  # last/ was written, the best was not

    monkeypatch.undo()
    resumed = train(_config(out, resume=True), data=blob_splits())
    assert resumed.best_epoch == whole.best_epoch
    assert_same_checkpoints(tmp_path / "whole", out)
    tensors, card = ck.read_checkpoint(out)
    assert card.training["best_epoch"] == whole.best_epoch
    assert json.loads((out / ck.CARD_FILE).read_text())["training"]["best_epoch"] == whole.best_epoch


def test_the_best_written_before_a_crash_of_the_next_epoch_is_the_one_the_card_names(tmp_path, monkeypatch):
    """Killed after epoch 1, resume: the weights under the card's best epoch are that epoch's."""
    out = tmp_path / "run"
    crashed = _crash_writing_the_best_of_epoch(monkeypatch, out, 1)
    with pytest.raises(OSError):
        train(_config(out, epochs=1), data=blob_splits())
    assert crashed == [1] and not (out / ck.WEIGHTS_FILE).exists()
    monkeypatch.undo()
    resumed = train(_config(out, epochs=1, resume=True), data=blob_splits())
    assert resumed.best_epoch == 1
    best, _ = ck.read_checkpoint(out)
    last, _ = ck.read_checkpoint(ck.find_last(out))
    for key in best:
        assert torch.equal(best[key], last[key]), key


def test_a_finished_run_without_a_test_split_is_marked_complete(tmp_path, monkeypatch):
    monkeypatch.setattr(reporting, "selection_score", lambda select_on, val: (0.0,))  # epoch 1 stays best
    result = train(_config(tmp_path / "run"), data=blob_splits(n_test=0))
    assert result.test_metrics is None and result.best_epoch == 1
    card = json.loads((tmp_path / "run" / ck.CARD_FILE).read_text())
    assert card["training"]["complete"] is True and card["training"]["epochs_done"] == 3
