"""Promises of `eqlens shift` and `eqlens fewshot`: they run end to end on tiny checkpoints and data,
write their JSON and markdown, and turn a user's mistake into one line and exit status 2."""

from __future__ import annotations

import json

import pytest

from eqlens import cli


@pytest.fixture
def eqlens(monkeypatch):
    """``eqlens.cli.main`` with the two commands registered, whether or not cli.COMMANDS lists them yet."""
    monkeypatch.setattr(cli, "COMMANDS", tuple(dict.fromkeys((*cli.COMMANDS, "shift", "fewshot"))))
    return cli.main


def test_eqlens_shift_scores_a_tiny_checkpoint_and_writes_json_and_markdown(eqlens, checkpoints, tmp_path, capsys):
    out_json, out_md = tmp_path / "shift.json", tmp_path / "shift.md"
    argv = ["shift", checkpoints["cnn"], checkpoints["gcnn"], "--shifts", "noise_x3,orientation", "--size", "6",
            "--angles", "0,45,90", "--device", "cpu", "--json", str(out_json), "--markdown", str(out_md)]
    assert eqlens(argv) == 0
    report = json.loads(out_json.read_text())
    assert [(r["model"], r["shift"]) for r in report["rows"]] == [
        (m, s) for m in ("cnn", "gcnn") for s in ("none", "noise_x3", "orientation")]
    assert report["rows"][2]["angles_deg"] == [0, 45, 90]
    text = out_md.read_text()
    assert "| cnn | none | no | noise_x3 | 6 |" in text and "plain twin" in text
    assert text in capsys.readouterr().out


def test_eqlens_fewshot_pretrains_fine_tunes_and_writes_the_curve(eqlens, tmp_path):
    out_json, out_md = tmp_path / "fewshot.json", tmp_path / "fewshot.md"
    argv = ["fewshot", "--models", "cnn", "--shots", "2,1", "--image-size", "33", "--pretrain-epochs", "1",
            "--train-size", "6", "--val-size", "3", "--test-size", "6", "--batch-size", "3", "--finetune-steps", "2",
            "--device", "cpu", "--out", str(tmp_path / "pre"), "--json", str(out_json), "--markdown", str(out_md)]
    assert eqlens(argv) == 0
    report = json.loads(out_json.read_text())
    (result,) = report["models"]
    assert [p["shots"] for p in result["curve"]] == [1, 2] and result["pretrain"]["source"] == "trained here"
    assert (tmp_path / "pre" / "cnn" / "model.safetensors").is_file()
    assert "### Test accuracy against examples per class" in out_md.read_text()


@pytest.mark.parametrize("argv", [["shift", "ckpt", "--shifts", "psf_narrow"],
                                  ["fewshot", "--shots", "ten"],
                                  ["fewshot", "--new-class", "vortex"],
                                  ["fewshot", "--pretrained", "cnn"]])
def test_a_users_mistake_is_one_line_and_status_2(eqlens, argv, capsys):
    assert eqlens(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith(f"eqlens {argv[0]}: error:")
