"""Runs as files (eqlens.training.run_file): a run file is the whole run; its init weights are found by
digest wherever they lie; the CLI refuses flags that would change it; every call appends to the ledger."""

import json
import shutil
from pathlib import Path

import pytest

from eqlens import checkpoint
from eqlens.checkpoint.transfer import find_weights, weights_digest
from eqlens.cli import main
from eqlens.core.run_config import TrainConfig
from eqlens.errors import CheckpointError, TrainingError
from eqlens.training import ledger
from eqlens.training.run_file import read_run_file, train_config

TINY = """
[train]
model = "cnn"
data = "binary"
image_size = 32
train_size = 16
val_size = 8
test_size = 8
batch_size = 8
epochs = {epochs}
robustness_size = 0
model_kwargs = {{ widths = [4, 8] }}
out = "{out}"
"""


def _write(path, text):
    path.write_text(text)
    return path


def test_a_run_file_trains_resumes_and_appends_to_the_ledger(tmp_path):
    out = tmp_path / "campaign"
    run = _write(tmp_path / "tiny.toml", TINY.format(epochs=1, out=out))
    assert main(["train", "--config", str(run), "--threads", "1"]) == 0
    entries = ledger.read(tmp_path)
    assert [e.run for e in entries] == ["tiny"] and entries[0].epochs_done == 1 and entries[0].test["n"] == 8
    # a second call of the finished run: resumes, trains nothing new, one more ledger line
    assert main(["train", "--config", str(run), "--threads", "1"]) == 0
    assert len(ledger.read(tmp_path)) == 2
    assert entries[0].file_sha256 == read_run_file(run).file_sha256


def test_flags_that_change_the_run_are_refused_beside_the_file(tmp_path, capsys):
    run = _write(tmp_path / "tiny.toml", TINY.format(epochs=1, out=tmp_path / "c"))
    assert main(["train", "--config", str(run), "--lr", "0.1"]) == 2
    assert "--lr" in capsys.readouterr().err
    assert not (tmp_path / "c").exists()


@pytest.mark.parametrize(("text", "message"), [
    ("[train]\nthreads = 2\n", "belong to the call"),
    ("[train]\nmodel = 'cnn'\ninit_from = 'checkpoints/x'\n", "not by a path"),
    ("[train]\nmodle = 'cnn'\n", "no TrainConfig field"),
    ("[init]\nweights = 'checkpoints/model_i_flagship'\n", "digest"),
    ("[train\n", "not TOML"),
    ("oops = 1\n", "unknown top-level"),
])
def test_a_bad_run_file_is_refused_naming_the_problem(tmp_path, text, message):
    with pytest.raises(TrainingError, match=message):
        read_run_file(_write(tmp_path / "bad.toml", text))


def test_a_huge_run_file_is_refused_before_it_is_read(tmp_path):
    with pytest.raises(TrainingError, match="bytes"):
        read_run_file(_write(tmp_path / "big.toml", "#" * 70_000))


def test_init_weights_are_found_by_digest_after_their_path_is_replaced(tmp_path):
    first = tmp_path / "first"
    assert main(["train", "--config", str(_write(tmp_path / "a.toml", TINY.format(epochs=1, out=first)))]) == 0
    digest = "sha256:" + weights_digest(checkpoint.read_checkpoint(first)[0])
    moved = tmp_path / "store" / "elsewhere"
    shutil.copytree(first, moved)
    shutil.rmtree(first)
    assert find_weights(digest, roots=[tmp_path / "store"]) == moved
    with pytest.raises(CheckpointError, match="no checkpoint"):
        find_weights("sha256:" + "0" * 64, roots=[tmp_path / "store"])
    with pytest.raises(CheckpointError, match="not a weights digest"):
        find_weights("sha256:xyz", roots=[tmp_path / "store"])


REPOSITORY = Path(__file__).resolve().parents[2]


def test_the_shipped_run_files_parse_and_name_weights_that_exist():
    files = sorted(REPOSITORY.glob("runs/*.toml"))
    assert len(files) >= 20, "runs/*.toml"
    for path in files:
        run = read_run_file(path)
        config = train_config(run)
        assert config.out == run.train.get("out", f"campaigns/{run.name}") and config.resume and config.fresh_data
        assert config.init_from == run.init_weights
        if run.init_weights is not None:
            assert find_weights(run.init_weights).is_dir()


def test_each_finished_campaigns_run_file_is_the_run_its_card_recorded():
    """The run files written from the campaigns' cards give back every run-defining setting the trainer
    recorded, and the digest of the weights the run started from (the card's, or its source's)."""
    from eqlens.training.resume import RUN_DEFINING

    cards = sorted(REPOSITORY.glob("campaigns/*/model_card.json")) + sorted(
        REPOSITORY.glob("campaigns/inputs/*/model_card.json"))
    checked = 0
    for card_path in cards:
        nested = card_path.parent.parent.name == "inputs"
        run_path = REPOSITORY / "runs" / f"{'inputs_' if nested else ''}{card_path.parent.name}.toml"
        if not run_path.exists():
            continue  # a checkpoint derived without training (ring_orbit4), or the input comparison's runs
        recorded = json.loads(card_path.read_text())["training"]["config"]
        config = train_config(read_run_file(run_path)).to_dict()
        for key in RUN_DEFINING:
            if key == "init_from":
                assert (config[key] is None) == (recorded[key] is None), card_path
            elif key == "data" and config[key] == "model_i_line":
                assert recorded[key] == "model_i" and "simulation_config" not in recorded  # the line vortex then
            else:  # a setting added after the run has its default there (resume.check_settings's rule)
                expected = recorded.get(key, TrainConfig.__dataclass_fields__[key].default)
                assert config[key] == expected, (card_path.parent.name, key)
        checked += 1
    assert checked >= 18


def test_the_ledger_holds_every_finished_campaign_once_with_its_cards_result():
    entries = ledger.read(REPOSITORY / "runs")
    names = [e.run for e in entries if e.written_from == "card"]
    assert len(names) == len(set(names)) >= 18
    orbit = next(e for e in entries if e.run == "flagship_orbit")
    card = checkpoint.read_card(REPOSITORY / "campaigns" / "flagship_orbit")
    assert orbit.test["accuracy"] == card.metrics["test"]["accuracy"] and orbit.epochs_done == orbit.epochs == 16
    assert orbit.file_sha256 == read_run_file(REPOSITORY / "runs" / "flagship_orbit.toml").file_sha256
