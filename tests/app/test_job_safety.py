"""Issue 13, items 8 and 13: training jobs of the app started together never share a folder nor each
other's random streams (the seed in a card reproduces its model), and a run that stopped early is listed
as partial and can be resumed from the Train page."""

from __future__ import annotations

import functools
import json
import threading
import time

from app import catalog, jobs, settings, state
from app.jobs import JobConflict, TrainingJob, claim_output_folder
from eqlens import checkpoint as ck
from eqlens.core.run_config import TrainConfig
from eqlens.training import run_setup, train
from tests.training.conftest import TINY_CNN, assert_same_checkpoints, blob_splits

from .conftest import no_exception


def _together(count: int, work):
    """Run ``work(i)`` in ``count`` threads released at the same instant; their results in order."""
    barrier, results = threading.Barrier(count), [None] * count

    def run(i):
        barrier.wait()
        results[i] = work(i)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    return results


def test_starts_in_the_same_second_claim_different_folders(tmp_path):
    wanted = tmp_path / "checkpoints" / "cnn_C4_20260101-120000"
    folders = _together(8, lambda i: claim_output_folder(wanted))
    assert len(set(folders)) == 8 and all(f.is_dir() and not any(f.iterdir()) for f in folders)
    assert wanted in folders


def _config(out, seed):
    # This test is about random streams (initial weights, batch order, augmentation draws), not about
    # rounding: Adam turns last-bit differences of a reduction (which depend on how many threads share
    # it, and on what else runs) into lr-sized steps. So the learning rate is too small to move a weight
    # (the weights stay their seeded initialisation, bit for bit) and the batch order and augmentation
    # show in the BatchNorm running statistics, compared to well above rounding.
    return TrainConfig(model="cnn", data="blobs", out=str(out), epochs=1, batch_size=4, lr=1e-12, seed=seed,
                       robustness_size=0, model_kwargs=TINY_CNN, device="cpu", threads=1)


def test_two_jobs_started_together_each_reproduce_their_seed(tmp_path, monkeypatch):
    # Preparing data takes a while (simulation, folder scans): make it slow enough that the two jobs overlap.
    resolve = run_setup.resolve_splits

    def slow_resolve(*args, **kwargs):
        splits = resolve(*args, **kwargs)
        time.sleep(0.3)
        return splits

    monkeypatch.setattr(run_setup, "resolve_splits", slow_resolve)
    train_fn = functools.partial(train, data=blob_splits())
    wanted = tmp_path / "checkpoints" / "cnn_C4_same_second"

    def start(i):
        return TrainingJob(_config(claim_output_folder(wanted), seed=i + 1), train_fn=train_fn).start()

    started = _together(2, start)
    assert all(job.join(120) for job in started)
    for job in started:
        assert job.snapshot().state == "done", job.snapshot().message
    assert started[0].config.out != started[1].config.out

    monkeypatch.setattr(run_setup, "resolve_splits", resolve)
    for job in started:  # alone, from the card's seed: the same weights
        card = json.loads((tmp_path / job.config.out / ck.CARD_FILE).read_text())
        seed = card["training"]["config"]["seed"]
        alone = tmp_path / f"alone_{seed}"
        train(_config(alone, seed=seed), data=blob_splits())
        # weights and running statistics to rounding: two jobs share the process's threads (another seed
        # moves them by ~1e-2; test_the_comparison_tells_seeds_apart)
        assert_same_checkpoints(alone, tmp_path / job.config.out, running_stats_atol=1e-5, weights_atol=1e-9)


def test_the_comparison_tells_seeds_apart(tmp_path):
    """The check above is not blind: runs of two seeds differ in weights and in running statistics."""
    train(_config(tmp_path / "one", seed=1), data=blob_splits())
    train(_config(tmp_path / "two", seed=2), data=blob_splits())
    a, _ = ck.read_checkpoint(tmp_path / "one")
    b, _ = ck.read_checkpoint(tmp_path / "two")
    assert (a["body.0.0.weight"] - b["body.0.0.weight"]).abs().max() > 1e-6  # far above the 1e-9 allowed above
    assert (a["body.0.1.running_mean"] - b["body.0.1.running_mean"]).abs().max() > 1e-3


def test_a_second_job_into_a_running_jobs_folder_is_refused(tmp_path):
    release = threading.Event()

    def waiting(config, progress, stop_event):
        release.wait(10)
        return "done"

    first = TrainingJob(_config(tmp_path / "run", 0), train_fn=waiting).start()
    try:
        assert jobs.is_active(tmp_path / "run")
        try:
            TrainingJob(_config(tmp_path / "run", 0), train_fn=waiting).start()
            raise AssertionError("a second job into the same folder started")
        except JobConflict as err:
            assert "another training" in str(err)
    finally:
        release.set()
        assert first.join(10)
    assert not jobs.is_active(tmp_path / "run")


def _partial_run(checkpoint_dir):
    """A run of 2 epochs stopped after its first (as a killed or cancelled app job leaves it)."""
    out = checkpoint_dir / "cnn_C4_stopped"
    config = TrainConfig(model="cnn", data="binary", out=str(out), epochs=2, batch_size=4, train_size=8, val_size=2,
                         test_size=2, image_size=settings.UNTRAINED_IMAGE_SIZE, robustness_size=0, device="cpu",
                         eval_batch_size=4)
    stop = threading.Event()
    result = train(config, progress=lambda p: p.phase == "val" and stop.set(), stop_event=stop)
    assert result.cancelled and ck.find_last(out) is not None
    return out


def test_a_partial_checkpoint_is_listed_as_partial_and_the_train_page_resumes_it(app_test, checkpoint_dir):
    out = _partial_run(checkpoint_dir)
    assert json.loads((out / ck.CARD_FILE).read_text())["training"]["complete"] is False
    labels = {e.key: e.label for e in catalog.entries()}
    assert labels[f"ckpt:{out}"] == "cnn_C4_stopped (partial checkpoint: epoch 1 of 2)"
    assert catalog.partial_runs(checkpoint_dir) == [out]

    at = app_test("views/train.py")
    no_exception(at)
    assert at.selectbox(key="train_resume_pick").value == str(out)
    at.button(key="train_resume").click().run()
    no_exception(at)
    job = at.session_state[state.TRAIN_JOB]
    assert job.join(120) and job.snapshot().state == "done", job.snapshot().message
    card = json.loads((out / ck.CARD_FILE).read_text())
    assert card["training"]["complete"] is True and [h["epoch"] for h in card["history"]] == [1, 2]
    assert {e.key: e.label for e in catalog.entries()}[f"ckpt:{out}"] == "cnn_C4_stopped (checkpoint)"
    at.run()
    no_exception(at)
    assert not catalog.partial_runs(checkpoint_dir)
