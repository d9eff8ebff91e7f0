"""The background training job and the Train page that drives it."""

from __future__ import annotations

import threading

import pytest

from app import catalog, state
from app.jobs import TrainingJob, progress_record
from eqlens.training.reporting import Progress

from .conftest import no_exception


def stepping_trainer(steps: int, release: threading.Event | None = None):
    """A train function that reports ``steps`` steps of one epoch and honours the stop event."""

    def train(config, progress, stop_event):
        for step in range(1, steps + 1):
            if stop_event.is_set():
                return "stopped early"
            progress(Progress("train", 1, 1, step, steps, 1.0 / step, 0.5, 10.0))
            if release is not None:
                release.wait(5)
        progress(Progress("val", 1, 1, 0, 0, 0.1, 0.9, 10.0, val={"loss": 0.2, "accuracy": 0.8}))
        return "trained"

    return train


def test_progress_events_keep_the_trainers_names():
    event = Progress("val", 2, 5, 0, 0, 0.3, 0.7, 12.0, val={"loss": 0.4, "accuracy": 0.6}, best_epoch=1)
    assert progress_record(event) == {"phase": "val", "epoch": 2, "epochs": 5, "step": 0, "steps": 0, "loss": 0.3,
                                      "accuracy": 0.7, "images_per_s": 12.0, "val_loss": 0.4, "val_accuracy": 0.6,
                                      "best_epoch": 1}
    regression = Progress("train", 1, 5, 3, 9, 0.5, float("nan"), 8.0, mae=0.25)
    assert progress_record(regression) == {"phase": "train", "epoch": 1, "epochs": 5, "step": 3, "steps": 9,
                                           "loss": 0.5, "mae": 0.25, "images_per_s": 8.0}


def test_a_finished_job_reports_done_with_its_history_and_result():
    job = TrainingJob(config=None, train_fn=stepping_trainer(3)).start()
    assert job.join(10)
    snap = job.snapshot()
    assert snap.state == "done" and snap.result == "trained" and snap.fraction == 1.0
    assert [h.get("step") for h in snap.history[:3]] == [1, 2, 3]
    assert snap.latest["val_accuracy"] == 0.8


def test_cancelling_stops_the_thread_and_the_job_ends_cancelled():
    release = threading.Event()
    job = TrainingJob(config=None, train_fn=stepping_trainer(1000, release)).start()
    job.cancel()
    release.set()
    assert job.join(10)
    snap = job.snapshot()
    assert snap.state == "cancelled" and snap.result == "stopped early" and snap.fraction < 1.0


def test_a_failing_trainer_ends_failed_with_its_message():
    def broken(config, progress, stop_event):
        raise RuntimeError("loss is NaN")

    job = TrainingJob(config=None, train_fn=broken).start()
    assert job.join(10)
    assert job.snapshot().state == "failed" and "loss is NaN" in job.snapshot().message


def test_a_snapshot_is_a_copy_the_thread_cannot_change():
    release = threading.Event()
    job = TrainingJob(config=None, train_fn=stepping_trainer(3, release)).start()
    snap = job.snapshot()
    release.set()
    job.join(10)
    assert len(snap.history) <= 1 and len(job.snapshot().history) == 4


def test_training_from_the_page_writes_a_checkpoint_every_page_then_offers(app_test, checkpoint_dir, runs_dir):
    at = app_test("views/train.py")
    at.button(key="train_start").click().run()
    no_exception(at)
    job = at.session_state[state.TRAIN_JOB]
    assert job.join(120), "the tiny training run did not finish"
    assert job.snapshot().state == "done", job.snapshot().message
    at.run()
    no_exception(at)
    saved = catalog.checkpoint_paths(runs_dir)  # the app's runs folder: the checkpoints folder stays shipped-only
    assert len(saved) == 1 and saved[0].name.startswith("cnn_") and not any(checkpoint_dir.iterdir())
    assert any("Checkpoint saved" in m.value for m in at.markdown)
    at.button(key="train_open").click().run()
    no_exception(at)
    assert at.title[0].value == "Explore"
    assert at.selectbox(key="explore_model").value == f"ckpt:{saved[0]}"
    assert not at.error


@pytest.mark.parametrize("mode", ["scene", "mixed"])
def test_the_page_can_train_with_turned_skies_and_the_card_records_it(app_test, runs_dir, mode):
    import json

    at = app_test("views/train.py")
    at.segmented_control(key="train_rotations").set_value(mode).run()
    at.button(key="train_start").click().run()
    job = at.session_state[state.TRAIN_JOB]
    assert job.join(120) and job.snapshot().state == "done", job.snapshot().message
    card = json.loads((catalog.checkpoint_paths(runs_dir)[0] / "model_card.json").read_text())
    assert card["training"]["config"]["augment_mode"] == mode


def test_cancelling_from_the_page_ends_the_run(app_test):
    at = app_test("views/train.py")
    at.number_input(key="train_epochs").set_value(50)
    at.number_input(key="train_size").set_value(64)
    at.button(key="train_start").click().run()
    job = at.session_state[state.TRAIN_JOB]
    at.button(key="train_cancel").click().run()
    assert job.join(60)
    at.run()
    no_exception(at)
    assert job.snapshot().state == "cancelled"
    assert any("cancelled" in w.value for w in at.warning)


def test_a_refusal_ends_the_job_failed_in_its_own_words_and_removes_the_empty_folder_made_for_it(tmp_path):
    from types import SimpleNamespace

    from eqlens.errors import TrainingError

    def refusing(config, progress, stop_event):
        raise TrainingError("one epoch takes about 9.0 min here, more than the 1 min budget")

    out = tmp_path / "run"
    out.mkdir()
    job = TrainingJob(SimpleNamespace(out=str(out)), train_fn=refusing, remove_empty_out=True).start()
    assert job.join(10)
    assert job.snapshot().state == "failed"
    assert job.snapshot().message == "one epoch takes about 9.0 min here, more than the 1 min budget"
    assert not out.exists()


def test_a_run_that_spent_its_time_budget_says_so_and_how_far_it_got():
    from types import SimpleNamespace

    def budgeted(config, progress, stop_event):
        return SimpleNamespace(budget_spent=True, card=SimpleNamespace(training={"epochs_done": 2}))

    job = TrainingJob(SimpleNamespace(out=None, epochs=5), train_fn=budgeted).start()
    assert job.join(10)
    snap = job.snapshot()
    assert snap.state == "done" and "time budget after epoch 2 of 5" in snap.message


def test_the_history_keeps_validation_at_its_epoch_only():
    job = TrainingJob(config=None, train_fn=stepping_trainer(2)).start()
    assert job.join(10)
    history = job.snapshot().history
    assert [h.get("phase") for h in history] == ["train", "train", "val"]
    assert "val_loss" not in history[0] and history[-1]["val_loss"] == 0.2 and history[-1]["at_epoch"] == 1.0


def test_the_clock_stops_when_the_run_ends():
    import time

    job = TrainingJob(config=None, train_fn=stepping_trainer(1)).start()
    assert job.join(10)
    elapsed = job.snapshot().elapsed_s
    time.sleep(0.05)
    assert job.snapshot().elapsed_s == elapsed
