"""Promises of fine-tuning through the trainer: ``init_from`` / ``init_state`` start a run from other
weights (all but a classifier of another class count), foreign weights are refused, a resumed run
keeps its own weights, and ``steps_per_epoch`` fixes the optimizer steps of an epoch. Tiny CNN,
24x24 blob images, 1-2 epochs."""

from __future__ import annotations

import shutil
import threading

import numpy as np
import pytest
import torch
from torch.utils.data import TensorDataset

from eqlens import checkpoint as ck
from eqlens import models
from eqlens.checkpoint.transfer import initialise_from, weights_digest
from eqlens.cli import main
from eqlens.core.distributed import DistributedContext
from eqlens.core.run_config import TrainConfig
from eqlens.data.splits import DataSplits
from eqlens.errors import CheckpointError, TrainingError
from eqlens.training import train
from eqlens.training.epoch_loop import epoch_generator, epoch_index_batches

from .conftest import TINY_CNN, BlobDataset, assert_same_checkpoints, blob_images, blob_splits

THREE = ["axion", "cdm", "no_sub"]


def _config(out=None, **kw) -> TrainConfig:
    base = dict(model="cnn", data="blobs", out=str(out) if out else None, epochs=1, batch_size=4, lr=3e-3,
                robustness_size=0, model_kwargs=TINY_CNN)
    return TrainConfig(**{**base, **kw})


def _three_class_splits(n_train: int = 24) -> DataSplits:
    def part(n, seed):
        return TensorDataset(blob_images(n, seed)[0], torch.arange(n) % 3)

    return DataSplits.from_datasets(part(n_train, 1), part(12, 2), part(12, 3), class_names=THREE)


def _set_event() -> threading.Event:
    event = threading.Event()
    event.set()
    return event


def _initial_model(**kw):
    """The run's model before its first optimizer step (the stop event is set from the start)."""
    result = train(_config(**kw), stop_event=_set_event(), data=_three_class_splits())
    assert result.cancelled and result.history == []
    return result


@pytest.fixture(scope="module")
def two_class_checkpoint(tmp_path_factory) -> str:
    out = tmp_path_factory.mktemp("init") / "two_class"
    train(_config(out, epochs=1), data=blob_splits())
    return str(out)


@pytest.mark.parametrize("source", ["checkpoint", "in-memory state"])
def test_the_run_starts_from_the_given_weights_except_a_classifier_for_another_class_count(two_class_checkpoint,
                                                                                            source):
    saved, _ = ck.read_checkpoint(two_class_checkpoint)
    if source == "checkpoint":
        started = _initial_model(init_from=two_class_checkpoint)
    else:
        model, _ = ck.load_checkpoint(two_class_checkpoint)
        started = train(_config(), stop_event=_set_event(), data=_three_class_splits(),
                        init_state=ck.eval_state_dict(model))
    fresh = _initial_model()
    weights, fresh_weights = ck.eval_state_dict(started.model), ck.eval_state_dict(fresh.model)
    assert weights["head.weight"].shape == (3, 8)
    for key in weights:  # the classifier is the fresh one of the same seed, the rest the checkpoint's
        expected = fresh_weights[key] if key.startswith("head.") else saved[key]
        assert torch.equal(weights[key], expected), key
    assert started.extra["transfer"] == {
        "source": two_class_checkpoint if source == "checkpoint" else "in-memory state",
        "source_sha256": weights_digest(saved), "loaded": len(saved) - 2,
        "skipped": {"head.weight": [[2, 8], [3, 8]], "head.bias": [[2], [3]]}, "missing": []}
    assert fresh.extra["transfer"] is None


def test_training_from_a_checkpoint_moves_the_copied_weights_and_the_card_names_the_source(two_class_checkpoint,
                                                                                           tmp_path):
    result = train(_config(tmp_path / "tuned", init_from=two_class_checkpoint), data=_three_class_splits())
    saved, _ = ck.read_checkpoint(two_class_checkpoint)
    tuned, card = ck.read_checkpoint(tmp_path / "tuned")
    assert not torch.equal(tuned["body.0.0.weight"], saved["body.0.0.weight"])
    assert list(card.class_names) == THREE and card.training["config"]["init_from"] == two_class_checkpoint
    record = card.training["initialised_from"]
    assert record == result.extra["transfer"] and record["source"] == two_class_checkpoint
    assert record["loaded"] == len(saved) - 2 and set(record["skipped"]) == {"head.weight", "head.bias"}


def test_the_weights_digest_follows_the_content_not_the_key_order_and_changes_with_any_value(two_class_checkpoint):
    saved, _ = ck.read_checkpoint(two_class_checkpoint)
    digest = weights_digest(saved)
    assert len(digest) == 64 and weights_digest(dict(reversed(list(saved.items())))) == digest
    nudged = {**saved, "head.bias": saved["head.bias"] + 1e-7}
    retyped = {**saved, "head.bias": saved["head.bias"].double()}
    renamed = {("x." + k if k == "head.bias" else k): v for k, v in saved.items()}
    assert len({digest, weights_digest(nudged), weights_digest(retyped), weights_digest(renamed)}) == 4


def test_the_card_keeps_the_digest_of_its_start_after_the_source_path_holds_other_weights(two_class_checkpoint,
                                                                                           tmp_path):
    source = tmp_path / "source"
    shutil.copytree(two_class_checkpoint, source)
    started_from = weights_digest(ck.read_checkpoint(source)[0])
    train(_config(tmp_path / "tuned", init_from=str(source)), data=_three_class_splits())
    shutil.rmtree(source)  # the path now holds the tuned model (as when a fine-tune replaces what it started from)
    shutil.copytree(tmp_path / "tuned", source)
    record = ck.read_checkpoint(tmp_path / "tuned")[1].training["initialised_from"]
    assert record["source"] == str(source) and record["source_sha256"] == started_from
    assert weights_digest(ck.read_checkpoint(source)[0]) != started_from


@pytest.mark.parametrize("name", models.names())
def test_every_registered_model_accepts_its_own_weights_with_another_number_of_outputs(name):
    torch.manual_seed(0)
    two = ck.eval_state_dict(models.create(name, num_classes=2, image_size=33))
    for outputs in (3, 1):  # another class count; a regression head
        transfer = initialise_from(models.create(name, num_classes=outputs, image_size=33), two, "two-class")
        assert len(transfer.skipped) == 2 and transfer.missing == [] and len(transfer.loaded) == len(two) - 2


def test_a_checkpoint_of_another_model_is_refused_by_name(two_class_checkpoint):
    with pytest.raises(TrainingError, match="holds a 'cnn' model, this run trains 'gcnn'"):
        train(_config(model="gcnn", model_kwargs={}, init_from=two_class_checkpoint), data=blob_splits())


def test_a_checkpoint_of_another_architecture_is_refused_naming_the_layers_that_differ(two_class_checkpoint):
    with pytest.raises(TrainingError, match=r"does not fit .*shapes differ: body\.0\.0\.weight \(4, 1, 3, 3\) -> "
                                            r"\(6, 1, 3, 3\)"):
        train(_config(model_kwargs={"widths": [6, 12]}, init_from=two_class_checkpoint), data=blob_splits())
    deeper = {**ck.read_checkpoint(two_class_checkpoint)[0], "body.9.weight": torch.zeros(3)}
    with pytest.raises(TrainingError, match=r"not in the model: body\.9\.weight"):
        train(_config(), data=blob_splits(), init_state=deeper)


def test_files_that_are_not_checkpoints_and_non_finite_weights_are_refused(two_class_checkpoint, tmp_path):
    (tmp_path / "noise.safetensors").write_bytes(np.random.default_rng(0).bytes(256))
    with pytest.raises(CheckpointError):
        train(_config(init_from=tmp_path / "noise.safetensors"), data=blob_splits())
    with pytest.raises(CheckpointError, match="not found"):
        train(_config(init_from=tmp_path / "nothing_here"), data=blob_splits())
    broken = {**ck.read_checkpoint(two_class_checkpoint)[0]}
    broken["head.bias"] = torch.tensor([0.0, float("nan")])
    with pytest.raises(CheckpointError, match="NaN"):
        train(_config(), data=blob_splits(), init_state=broken)


def test_init_state_and_init_from_together_raise_training_error(two_class_checkpoint):
    state, _ = ck.read_checkpoint(two_class_checkpoint)
    with pytest.raises(TrainingError, match="not both"):
        train(_config(init_from=two_class_checkpoint), data=blob_splits(), init_state=state)


def test_a_resumed_fine_tuning_run_keeps_its_own_weights_and_ends_as_the_uninterrupted_one(two_class_checkpoint,
                                                                                           tmp_path):
    source = tmp_path / "source"
    shutil.copytree(two_class_checkpoint, source)
    settings = dict(init_from=str(source), epochs=2, steps_per_epoch=12)  # 12 steps: a callback at step 10
    train(_config(tmp_path / "straight", **settings), data=_three_class_splits())
    stop = threading.Event()

    def stop_in_epoch_two(p):
        if p.epoch == 2 and p.phase == "train":
            stop.set()

    cut = train(_config(tmp_path / "cut", **settings), progress=stop_in_epoch_two, stop_event=stop,
                data=_three_class_splits())
    assert cut.cancelled and len(cut.history) == 1
    shutil.rmtree(source)  # a resumed run does not read its init checkpoint again
    resumed = train(_config(tmp_path / "cut", resume=True, **settings), data=_three_class_splits())
    assert [h["epoch"] for h in resumed.history] == [1, 2]
    assert resumed.card.training["initialised_from"]["source"] == str(source)
    assert_same_checkpoints(tmp_path / "straight", tmp_path / "cut")


@pytest.mark.parametrize("change", [{"steps_per_epoch": 3}, {"init_from": "another_checkpoint"}])
def test_resuming_with_another_init_from_or_steps_per_epoch_is_refused(two_class_checkpoint, tmp_path, change):
    first = dict(init_from=two_class_checkpoint, steps_per_epoch=2)
    train(_config(tmp_path / "run", **first), data=_three_class_splits())
    with pytest.raises(TrainingError, match=f"cannot resume .*{next(iter(change))}"):
        train(_config(tmp_path / "run", resume=True, epochs=2, **{**first, **change}), data=_three_class_splits())


@pytest.mark.parametrize(("n_train", "steps"), [(3, 5), (48, 5), (48, 30)])
def test_steps_per_epoch_gives_exactly_that_many_optimizer_steps_per_epoch(tmp_path, n_train, steps):
    data = DataSplits.from_datasets(BlobDataset(n_train, 1), BlobDataset(8, 2), class_names=["no_sub", "sub"])
    seen = []
    train(_config(tmp_path / "run", epochs=2, steps_per_epoch=steps), progress=seen.append, data=data)
    optimizer = ck.load_state(tmp_path / "run" / ck.LAST_DIR)["optimizer"]
    assert {int(s["step"]) for s in optimizer["state"].values()} == {2 * steps}
    assert {p.steps for p in seen if p.phase == "train"} == {steps}


def test_an_epoch_of_k_steps_is_the_first_k_batches_of_successive_fresh_passes():
    one_pass = epoch_index_batches(10, 4, None, epoch_generator(0, 1, 0), DistributedContext())
    assert len(one_pass) == 2 and all(len(b) == 4 and len(set(b)) == 4 for b in one_pass)
    seven = epoch_index_batches(10, 4, 7, epoch_generator(0, 1, 0), DistributedContext())
    assert len(seven) == 7 and seven[:2] == one_pass
    passes = [seven[i : i + 2] for i in range(0, 6, 2)]
    assert all(len({i for b in p for i in b}) == 8 for p in passes) and passes[0] != passes[1]
    # A set smaller than a batch: every step is the whole set in a fresh order.
    small = epoch_index_batches(3, 4, 5, epoch_generator(0, 1, 0), DistributedContext())
    assert len(small) == 5 and all(sorted(b) == [0, 1, 2] for b in small)


def test_ranks_take_equal_step_counts_from_disjoint_shards_of_the_same_passes():
    ranks = [epoch_index_batches(21, 2, 9, epoch_generator(3, 2, 0), DistributedContext(r, 2)) for r in range(2)]
    assert [len(b) for b in ranks] == [9, 9]
    single = epoch_index_batches(21, 4, None, epoch_generator(3, 2, 0), DistributedContext())
    p = [i for b in single for i in b]  # the start of the permutation every rank draws
    assert ranks[0][0] + ranks[1][0] == [p[0], p[2], p[1], p[3]]
    first_pass = [{i for b in batches[:5] for i in b} for batches in ranks]  # 11 items per rank: 5 batches
    assert first_pass[0].isdisjoint(first_pass[1]) and len(first_pass[0] | first_pass[1]) == 20


@pytest.mark.parametrize("bad", [{"steps_per_epoch": 0}, {"steps_per_epoch": 2.5}, {"steps_per_epoch": True},
                                 {"init_from": " "}, {"init_from": "runs/a", "out": "runs/a"}])
def test_bad_init_from_and_steps_per_epoch_settings_raise_training_error(bad):
    with pytest.raises(TrainingError, match=next(iter(bad)) if "out" not in bad else "overwrite"):
        _config(**bad)


def _three_class_folder(root):
    """A DeepLense-layout folder with classes axion, cdm, no_sub of 24x24 blob images, 8 each."""
    x, _ = blob_images(24, seed=7)
    for i, image in enumerate(x):
        name = THREE[i % 3]
        (root / name).mkdir(parents=True, exist_ok=True)
        np.save(root / name / f"{name}_sim_{i}.npy", (image[0].numpy() * 1000).astype(np.float32))
    return root


def test_eqlens_train_init_from_fine_tunes_a_checkpoint_on_a_folder_with_other_classes(two_class_checkpoint,
                                                                                       tmp_path, capsys):
    folder, out = _three_class_folder(tmp_path / "lenses"), tmp_path / "tuned"
    argv = ["train", "--init-from", two_class_checkpoint, "--data", str(folder), "--epochs", "1", "--batch-size",
            "4", "--steps-per-epoch", "3", "--out", str(out), "--device", "cpu", "--robustness-size", "0"]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    digest = weights_digest(ck.read_checkpoint(two_class_checkpoint)[0])[:12]
    assert f"initialised from {two_class_checkpoint} (weights sha256 {digest}): " in printed
    assert "head.weight (2, 8) -> (3, 8)" in printed
    model, card = ck.load_checkpoint(out)
    # The architecture came from the checkpoint's card: --model and the tiny widths were not given.
    # A plain model names no group (issue 14), whatever group the run augmented with.
    assert card.build_config == {"name": "cnn", "num_classes": 3, "image_size": 24, "widths": [4, 8]}
    assert card.group is None
    assert list(card.class_names) == THREE and card.training["initialised_from"]["loaded"] > 0
    assert card.training["config"]["steps_per_epoch"] == 3
    assert {int(s["step"]) for s in ck.load_state(out / ck.LAST_DIR)["optimizer"]["state"].values()} == {3}


@pytest.mark.parametrize("argv", [["train", "--data", "binary"],
                                  ["train", "--model", "gcnn", "--init-from", "{ckpt}", "--data", "binary"]])
def test_eqlens_train_without_a_model_or_with_a_foreign_init_from_is_one_line_and_status_2(two_class_checkpoint,
                                                                                         tmp_path, argv, capsys):
    assert main([a.format(ckpt=two_class_checkpoint) for a in argv] + ["--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("eqlens train: error:")


def test_eqlens_train_model_kwargs_override_the_init_from_cards_one_by_one(tmp_path, capsys):
    """``--model-kwargs`` with ``--init-from`` changes the named hyper-parameter and keeps the card's others;
    one that changes a weight's shape (wider layers) is refused, one line, status 2."""
    source = tmp_path / "gcnn"
    train(_config(source, model="gcnn", group="C4", model_kwargs={"widths": [2, 4], "hidden": 8}), data=blob_splits())
    folder = _three_class_folder(tmp_path / "lenses")
    base = ["train", "--init-from", str(source), "--data", str(folder), "--epochs", "1", "--batch-size", "4",
            "--steps-per-epoch", "2", "--device", "cpu", "--robustness-size", "0"]
    assert main([*base, "--model-kwargs", '{"group_pool": "mean"}', "--out", str(tmp_path / "mean")]) == 0
    _, card = ck.load_checkpoint(tmp_path / "mean")
    assert card.build_config["group_pool"] == "mean" and card.build_config["widths"] == [2, 4]
    assert card.build_config["hidden"] == 8
    assert set(card.training["initialised_from"]["skipped"]) == {"head.weight", "head.bias"}  # 2 -> 3 classes
    capsys.readouterr()
    assert main([*base, "--model-kwargs", '{"widths": [3, 4]}', "--out", str(tmp_path / "wider")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("eqlens train: error:")
    # A ring-means head reads the global-mean checkpoint as the same function (its first head layer widened).
    assert main([*base, "--model-kwargs", '{"radial_bins": 2}', "--out", str(tmp_path / "rings")]) == 0
    _, card = ck.load_checkpoint(tmp_path / "rings")
    assert card.build_config["radial_bins"] == 2 and card.build_config["widths"] == [2, 4]
    assert set(card.training["initialised_from"]["skipped"]) == {"head.weight", "head.bias"}  # hidden.0 fits
