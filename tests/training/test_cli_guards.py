"""Issue 13, items 7 and 11: the command line refuses numbers out of range at the argument parser (one
line naming the flag and the range, no traceback), and never silently replaces what an output folder
holds: `eqlens train` and `eqlens simulate` refuse a non-empty --out without --resume or --overwrite."""

from __future__ import annotations

import json

import pytest
import torch

from eqlens import checkpoint as ck
from eqlens.cli import build_parser, main
from eqlens.commands.train import prepare_out
from eqlens.core.run_config import TrainConfig
from eqlens.errors import EqlensError, TrainingError
from eqlens.models import create

SMALL = ["--image-size", "17", "--train-size", "8", "--val-size", "4", "--test-size", "4", "--batch-size", "4",
         "--device", "cpu", "--epochs", "1", "--robustness-size", "0", "--model-kwargs", '{"widths": [4, 8]}']


@pytest.mark.parametrize("argv, says", [
    (["train", "--model", "cnn", "--lr", "1e300"], "argument --lr: must be a finite number in (0, 10], got 1e300"),
    (["train", "--model", "cnn", "--lr", "0"], "argument --lr"),
    (["train", "--model", "cnn", "--lr", "nan"], "argument --lr"),
    (["train", "--model", "cnn", "--weight-decay", "nan"], "argument --weight-decay: must be a finite number"),
    (["train", "--model", "cnn", "--weight-decay", "-1"], "argument --weight-decay"),
    (["train", "--model", "cnn", "--batch-size", "0"], "argument --batch-size: must be an integer in [1, 65536]"),
    (["train", "--model", "cnn", "--workers", "-1"], "argument --workers: must be an integer in [0, 256], got -1"),
    (["train", "--model", "cnn", "--image-size", "-5"], "argument --image-size"),
    (["train", "--model", "cnn", "--image-size", "100000"], "argument --image-size: must be an integer in [1, 512]"),
    (["train", "--model", "cnn", "--epochs", "0"], "argument --epochs"),
    (["train", "--model", "cnn", "--seed", "-1"], "argument --seed"),
    (["train", "--model", "cnn", "--train-size", "0"], "argument --train-size"),
    (["train", "--model", "cnn", "--test-size", "-1"], "argument --test-size"),
    (["train", "--model", "cnn", "--steps-per-epoch", "0"], "argument --steps-per-epoch"),
    (["train", "--model", "cnn", "--crop", "-5"], "argument --crop"),
    (["train", "--model", "cnn", "--minutes", "nan"], "argument --minutes"),
    (["train", "--model", "cnn", "--hours", "-1"], "argument --hours"),
    (["train", "--model", "cnn", "--threads", "0"], "argument --threads"),
    (["train", "--model", "cnn", "--epochs", "three"], "argument --epochs: expected an integer, got 'three'"),
    (["evaluate", "ckpt", "--size", "-5"], "argument --size: must be an integer >= 1, got -5"),
    (["evaluate", "ckpt", "--batch-size", "0"], "argument --batch-size"),
    (["evaluate", "ckpt", "--workers", "-1"], "argument --workers"),
    (["evaluate", "ckpt", "--robustness-size", "-3"], "argument --robustness-size"),
    (["simulate", "--n-per-class", "-1", "--out", "x"], "argument --n-per-class"),
    (["simulate", "--n-per-class", "1", "--batch-size", "0", "--out", "x"], "argument --batch-size"),
    (["shift", "ckpt", "--size", "-5"], "argument --size"),
    (["train", "--model", "cnn", "--resume", "--overwrite"], "not allowed with argument"),
])
def test_out_of_range_values_are_refused_by_the_parser_in_one_line(argv, says, capsys):
    with pytest.raises(SystemExit) as stopped:
        main(argv)
    assert stopped.value.code == 2
    err = capsys.readouterr().err
    assert says in err and "Traceback" not in err


def test_the_documented_ranges_still_parse():
    args = build_parser().parse_args(["train", "--model", "cnn", "--lr", "1e-3", "--weight-decay", "0", "--workers",
                                      "0", "--image-size", "81", "--crop", "81", "--hours", "2", "--test-size", "0"])
    assert args.lr == 1e-3 and args.image_size == 81 and args.hours == 2.0 and args.test_size == 0


@pytest.mark.parametrize("setting", [dict(lr=1e300), dict(lr=float("inf")), dict(weight_decay=float("nan")),
                                     dict(batch_size=0), dict(workers=-1), dict(seed=-1), dict(epochs="3"),
                                     dict(image_size=-5), dict(image_size=100_000), dict(betas=("a", 0.9))])
def test_train_config_refuses_the_same_values_for_library_callers(setting):
    with pytest.raises(TrainingError):
        TrainConfig(model="cnn", **setting)


def _tiny_checkpoint(folder, model="gcnn"):
    torch.manual_seed(0)
    net = create(model, num_classes=2, group="C4", image_size=17, widths=[4, 8])
    card = ck.make_card(net, class_names=["no_sub", "sub"], group="C4", data={"spec": "binary"}, training={},
                        input_spec={"image_size": 17})
    ck.write_checkpoint(folder, net, card)
    return (folder / ck.WEIGHTS_FILE).read_bytes()


def test_the_default_output_folder_never_clobbers_a_previous_run(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    before = _tiny_checkpoint(tmp_path / "checkpoints" / "cnn", model="cnn")
    assert main(["train", "--model", "cnn", "--data", "binary", *SMALL]) == 2
    err = capsys.readouterr().err
    assert "default output folder checkpoints/cnn is not empty" in err and "--resume" in err and "--overwrite" in err
    assert (tmp_path / "checkpoints" / "cnn" / ck.WEIGHTS_FILE).read_bytes() == before


def test_an_out_holding_another_models_checkpoint_is_refused_then_replaced_with_overwrite(tmp_path, capsys):
    out = tmp_path / "ckpt"
    before = _tiny_checkpoint(out, model="gcnn")
    argv = ["train", "--model", "cnn", "--data", "binary", "--out", str(out), *SMALL]
    assert main(argv) == 2
    assert "a checkpoint of gcnn on binary" in capsys.readouterr().err
    assert (out / ck.WEIGHTS_FILE).read_bytes() == before
    assert main([*argv, "--overwrite"]) == 0
    card = json.loads((out / ck.CARD_FILE).read_text())
    assert card["model"]["name"] == "cnn" and ck.load_state(ck.find_last(out))["config"]["model"] == "cnn"


def test_resume_needs_a_resume_state_when_the_folder_holds_a_checkpoint(tmp_path, capsys):
    out = tmp_path / "shipped"
    before = _tiny_checkpoint(out)
    assert main(["train", "--model", "cnn", "--data", "binary", "--out", str(out), "--resume", *SMALL]) == 2
    assert "no resume state" in capsys.readouterr().err
    assert (out / ck.WEIGHTS_FILE).read_bytes() == before


def test_resume_into_an_empty_or_missing_folder_or_a_run_with_its_state_is_allowed(tmp_path):
    prepare_out(str(tmp_path / "missing"), resume=True, overwrite=False)
    (tmp_path / "empty").mkdir()
    prepare_out(str(tmp_path / "empty"), resume=False, overwrite=False)
    run = tmp_path / "run"
    _tiny_checkpoint(run)
    _tiny_checkpoint(run / ck.LAST_DIR)
    (run / ck.LAST_DIR / ck.STATE_FILE).write_bytes(b"state")
    prepare_out(str(run), resume=True, overwrite=False)
    with pytest.raises(EqlensError, match="not empty"):
        prepare_out(str(run), resume=False, overwrite=False)
    (run / "notes.txt").write_text("mine")
    prepare_out(str(run), resume=False, overwrite=True)
    assert sorted(p.name for p in run.iterdir()) == ["notes.txt"]  # only the checkpoint went


def _classes(folder):
    return sorted(p.name for p in folder.iterdir())


def test_simulate_refuses_a_folder_holding_another_data_set_and_replaces_it_with_overwrite(tmp_path, capsys):
    out = tmp_path / "lenses"
    base = ["simulate", "--n-per-class", "1", "--out", str(out), "--no-progress"]
    assert main([*base, "--config", "model_i"]) == 0
    assert _classes(out) == ["axion", "cdm", "no_sub"]
    assert main([*base, "--config", "binary"]) == 2
    assert "not empty" in capsys.readouterr().err and _classes(out) == ["axion", "cdm", "no_sub"]
    assert main([*base, "--config", "binary", "--overwrite"]) == 0
    assert _classes(out) == ["no_sub", "sub"]  # not four classes mixed from two simulations
    (out / "README").write_text("my notes")
    assert main([*base, "--config", "binary", "--overwrite"]) == 2
    assert "README" in capsys.readouterr().err and (out / "README").exists()
