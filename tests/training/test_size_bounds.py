"""Issue 24, item 1 (training side): every integer of a run that becomes an allocation or a loop is bounded
before anything is rendered. `--train-size 1e12` tried an 8 TB allocation and `--steps-per-epoch 1e12` ran
unbounded; the split sizes are capped by count and, once the image size is known, by memory."""

from __future__ import annotations

import pytest
import torch

from eqlens.cli import main
from eqlens.core.run_config import MAX_SPLIT_BYTES, MAX_SPLIT_SIZE, MAX_STEPS_PER_EPOCH, TrainConfig
from eqlens.errors import TrainingError
from eqlens.training import run_setup


@pytest.mark.parametrize("field, value", [("train_size", 10**12), ("val_size", 10**12), ("test_size", 10**12),
                                          ("robustness_size", 10**12), ("steps_per_epoch", 10**12)])
def test_sizes_and_steps_beyond_their_caps_are_refused_by_the_config(field, value):
    with pytest.raises(TrainingError, match=field):
        TrainConfig(model="cnn", **{field: value})


@pytest.mark.parametrize("flag", ["--train-size", "--val-size", "--steps-per-epoch"])
def test_the_command_line_refuses_them_in_one_line(flag, capsys):
    with pytest.raises(SystemExit) as stopped:
        main(["train", "--model", "cnn", flag, str(10**12)])
    assert stopped.value.code == 2
    err = capsys.readouterr().err
    assert f"argument {flag}: must be an integer in [1, " in err and "Traceback" not in err


def test_the_caps_themselves_are_accepted():
    config = TrainConfig(model="cnn", steps_per_epoch=MAX_STEPS_PER_EPOCH, train_size=MAX_SPLIT_SIZE)
    assert config.steps_per_epoch == MAX_STEPS_PER_EPOCH


def test_splits_too_large_for_memory_are_refused_before_anything_is_rendered(monkeypatch):
    def render(*args, **kwargs):
        raise AssertionError("the splits were rendered")

    monkeypatch.setattr(run_setup, "resolve_data", render)
    config = TrainConfig(model="cnn", data="model_i", image_size=129, train_size=MAX_SPLIT_SIZE)
    with pytest.raises(TrainingError, match=r"train_size \+ val_size \+ test_size = 10,002,000 .* over the 8 GiB"):
        run_setup.resolve_splits(config, torch.device("cpu"), None)


def test_the_memory_bound_counts_what_is_held_and_not_a_fresh_data_stream():
    held = TrainConfig(model="cnn", train_size=9000, val_size=1000, test_size=1000)
    assert run_setup.check_split_memory(held, 129, 150) == 11000 * 150**2 * 4 < MAX_SPLIT_BYTES
    fresh = TrainConfig(model="cnn", train_size=MAX_SPLIT_SIZE, fresh_data=True, steps_per_epoch=10)
    assert run_setup.check_split_memory(fresh, 129, 150) == 2000 * 150**2 * 4
