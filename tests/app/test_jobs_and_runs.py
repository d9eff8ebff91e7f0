"""Jobs belong to the server, runs to a runs folder: a training started on the Train page is found again
after a reload (its address holds the job's token) with its progress and Cancel, another browser given the
token opens it too, and the page's runs land in the app's runs folder (git-ignored), offered beside the
shipped checkpoints as app runs, never in the checkpoints folder."""

from __future__ import annotations

import threading

import pytest

from app import catalog, jobs, runs, settings, state

from .conftest import ROOT, no_exception
from .test_pages import write_tiny_checkpoint


@pytest.fixture
def endless_training(monkeypatch):
    """eqlens.training.train replaced by a run that reports steps until it is cancelled (60 s at most)."""
    import eqlens.training
    from eqlens.training.reporting import Progress

    started = threading.Event()

    def train(config, progress, stop_event):
        for step in range(1, 600):
            progress(Progress("train", 1, 1, step, 600, 1.0, 0.5, 10.0))
            started.set()
            if stop_event.wait(0.1):
                return None
        return None

    monkeypatch.setattr(eqlens.training, "train", train)
    return started


def session(job: str | None = None):
    """A new browser session (a reload is one) on the Train page alone, its address holding ``?job=<token>``."""
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(str(ROOT / "app" / "views" / "train.py"), default_timeout=180)
    if job is not None:
        at.query_params["job"] = job
    return at.run()


def test_a_reload_finds_the_running_job_again_with_its_cancel(checkpoint_dir, runs_dir, endless_training):
    first = session()
    first.button(key="train_start").click().run()
    no_exception(first)
    job = first.session_state[state.TRAIN_JOB]
    assert endless_training.wait(30)
    token = first.query_params["job"]
    token = token[0] if isinstance(token, list) else token
    assert token == job.token and jobs.find(token) is job
    assert str(job.config.out).startswith(str(runs_dir))  # the app's runs folder, not the checkpoints folder

    reloaded = session(job=token)  # the same address, a new session: the tab's state is gone, the job is not
    no_exception(reloaded)
    assert reloaded.session_state[state.TRAIN_JOB] is job
    assert any(job.token in c.value for c in reloaded.caption)
    reloaded.button(key="train_cancel").click().run()
    assert job.join(30) and job.snapshot().state == "cancelled"
    assert job not in jobs.server_jobs()


def test_another_browser_sees_the_run_listed_and_opens_it_only_with_its_token(checkpoint_dir, endless_training):
    first = session()
    first.button(key="train_start").click().run()
    job = first.session_state[state.TRAIN_JOB]
    assert endless_training.wait(30)
    try:
        other = session()
        no_exception(other)
        assert state.TRAIN_JOB not in other.session_state  # not its job
        assert any(str(job.config.out).rsplit("/", 1)[-1] in c.value for c in other.caption)  # listed
        assert not [b for b in other.button if b.key == "train_cancel"]  # but not its to cancel
        other.text_input(key="train_adopt_token").input("not-the-token")
        other.button(key="train_adopt").click().run()
        assert any("No job of this server has that token" in e.value for e in other.error)
        other.text_input(key="train_adopt_token").input(job.token)
        other.button(key="train_adopt").click().run()
        no_exception(other)
        assert other.session_state[state.TRAIN_JOB] is job
        other.button(key="train_cancel").click().run()
        assert job.join(30) and job.snapshot().state == "cancelled"
    finally:
        job.cancel()


def test_app_runs_are_offered_beside_the_shipped_checkpoints_and_marked(checkpoint_dir, runs_dir):
    runs_dir.mkdir(parents=True)
    write_tiny_checkpoint(checkpoint_dir, "shipped_cnn", "cnn", "model_i", ["axion", "cdm", "no_sub"])
    write_tiny_checkpoint(runs_dir, "cnn_C4_20261208-031500", "cnn", "model_i", ["axion", "cdm", "no_sub"])
    labels = {e.key: e.label for e in catalog.entries()}
    assert labels[f"ckpt:{checkpoint_dir / 'shipped_cnn'}"] == "shipped_cnn (checkpoint)"
    assert labels[f"ckpt:{runs_dir / 'cnn_C4_20261208-031500'}"] == "cnn_C4_20261208-031500 (app run, checkpoint)"
    assert [p.name for p in catalog.checkpoint_paths(settings.CHECKPOINT_DIR)] == ["shipped_cnn"]
    assert {r.name for r in runs.list_runs()} == {"shipped_cnn", "cnn_C4_20261208-031500"}
