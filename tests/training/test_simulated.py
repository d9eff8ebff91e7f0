"""Promises on the built-in simulator's data (tiny: 32x32 inputs, a few dozen images): the CLI trains and
evaluates on it, evaluation re-creates the held-out test split, and the bench writes one table."""

import json

import pytest

from eqlens.cli import main
from eqlens.experiments.model_comparison import format_table, run_comparison

SMALL = ["--image-size", "32", "--train-size", "16", "--val-size", "8", "--test-size", "8", "--batch-size", "8",
         "--device", "cpu"]


def test_cli_trains_on_simulated_data_and_evaluate_recreates_its_test_split(tmp_path):
    ckpt, report_path = tmp_path / "cnn", tmp_path / "report.json"
    assert main(["train", "--model", "cnn", "--data", "binary", "--epochs", "1", "--robustness-size", "0",
                 "--out", str(ckpt), *SMALL]) == 0
    assert main(["evaluate", str(ckpt), "--json", str(report_path), "--robustness-size", "4"]) == 0
    report = json.loads(report_path.read_text())
    card = json.loads((ckpt / "model_card.json").read_text())
    recorded = card["data"].pop("simulation_config")  # the whole config it rendered, so the data stays known
    assert card["data"] == {"kind": "simulated", "spec": "binary", "data_seed": 0,
                            "sizes": {"train": 16, "val": 8, "test": 8}}
    assert recorded["name"] == "binary" and recorded["vortex_model"] in ("points", "line")
    assert report["n"] == 8 and report["class_names"] == ["no_sub", "sub"]
    assert report["accuracy"] == pytest.approx(card["metrics"]["test"]["accuracy"])
    assert report["auc_macro"] == pytest.approx(card["metrics"]["test"]["auc_macro"], nan_ok=True)
    assert {p["source"]["split"] for p in report["predictions"]} == {"test"}
    assert report["invariance_error"] is not None


def test_the_bench_writes_one_table_with_mean_and_spread_over_seeds():
    rows = run_comparison(["cnn"], ["binary"], seeds=(0, 1), epochs=1, image_size=32, train_size=8, val_size=4,
                     test_size=4, batch_size=4, device="cpu", robustness_size=2, model_kwargs={"widths": [4, 8]})
    assert len(rows) == 1 and rows[0]["seeds"] == 2
    table = format_table(rows)
    header, rule, line = table.splitlines()[:3]
    assert header.count("|") == rule.count("|") == line.count("|")
    assert line.startswith("| binary | cnn | none |") and "±" in line
    cells = dict(zip(header.split("|"), line.split("|"), strict=True))
    assert cells[" worst-angle acc (turned sky) "].strip() != "n/a" and rows[0]["sky_worst_angle_accuracy"] >= 0


def test_a_resumed_bench_reads_its_finished_runs_back_instead_of_training_again(tmp_path, monkeypatch):
    import eqlens.training.trainer as trainer

    args = ["bench", "--models", "cnn", "--data", "binary", "--seeds", "2", "--epochs", "1",
            "--robustness-size", "0", "--checkpoints", str(tmp_path / "runs"), *SMALL]
    assert main([*args, "--out", str(tmp_path / "first.md")]) == 0
    real_train, trained = trainer.train, []

    def counting_train(config, **kwargs):
        result = real_train(config, **kwargs)
        trained.append((config.resume, len(result.history)))
        return result

    monkeypatch.setattr(trainer, "train", counting_train)
    assert main([*args, "--resume", "--out", str(tmp_path / "again.md")]) == 0
    assert trained == [(True, 1), (True, 1)]  # both runs came back with their one epoch, none trained anew

    def row(name):
        return next(line for line in (tmp_path / name).read_text().splitlines() if line.startswith("| binary"))

    assert row("again.md") == row("first.md")  # same test metrics and the same recorded training time


def test_resume_without_a_checkpoint_folder_is_refused(tmp_path, capsys):
    assert main(["bench", "--models", "cnn", "--data", "binary", "--resume", "--out", str(tmp_path / "b.md")]) != 0
    assert "--checkpoints" in capsys.readouterr().err


def test_a_stopped_bench_keeps_the_table_of_its_finished_runs(tmp_path, monkeypatch):
    import eqlens.training.trainer as trainer

    real_train, configs = trainer.train, []

    def train_then_stop(config, **kwargs):
        configs.append(config)
        if len(configs) == 2:
            raise KeyboardInterrupt  # a Ctrl-C during the second seed
        return real_train(config, **kwargs)

    monkeypatch.setattr(trainer, "train", train_then_stop)
    out = tmp_path / "bench.md"
    assert main(["bench", "--models", "cnn", "--data", "binary", "--seeds", "2", "--epochs", "1",
                 "--schedule", "cosine", "--robustness-size", "0", "--out", str(out), *SMALL]) != 0
    assert [c.schedule for c in configs] == ["cosine", "cosine"]
    lines = out.read_text().splitlines()
    assert "partial" in lines[0]
    rows = [line for line in lines if line.startswith("| binary")]
    assert len(rows) == 1 and rows[0].startswith("| binary | cnn | none |")


def test_a_resumed_bench_keeps_runs_begun_on_the_line_vortex_apart_from_todays_model_i(tmp_path, monkeypatch):
    import dataclasses

    import torch

    from eqlens import checkpoint as ck
    from eqlens.simulation import configs, get_config

    runs = tmp_path / "runs"
    common = dict(epochs=1, image_size=32, train_size=6, val_size=3, test_size=3, batch_size=3, device="cpu",
                  robustness_size=0, model_kwargs={"widths": [4, 8]})
    # seed 0 as a bench begun before 2026-12-02 ran it: model_i drew the vortex as the line, its state said no more
    monkeypatch.setitem(configs._CONFIGS, "model_i", dataclasses.replace(get_config("model_i_line"), name="model_i"))
    run_comparison(["cnn"], ["model_i"], seeds=(0,), out_dir=str(runs), **common)
    last = runs / "model_i" / "cnn" / "seed0" / ck.LAST_DIR
    state = ck.load_state(last)
    del state["config"]["simulation_config"]
    torch.save(state, last / ck.STATE_FILE)
    monkeypatch.undo()  # today: model_i draws 100 point masses; seed 1 trains on them
    with pytest.warns(UserWarning, match="model_i_line"):
        rows = run_comparison(["cnn"], ["model_i"], seeds=(0, 1), out_dir=str(runs), resume=True, **common)
    assert sorted((r["data"], r["seeds"]) for r in rows) == [("model_i", 1), ("model_i_line", 1)]
    assert "| model_i_line | cnn |" in format_table(rows)
