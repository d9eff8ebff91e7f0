"""The Train page: its forms outlive a visit to another page, a finished run's results leave with the
form that described them, any run can be continued or fine-tuned under the command line's budget and
resume machinery, and the run history is read back from the checkpoints folder."""

from __future__ import annotations

import json
import shutil
import threading

from app import runs, settings, state
from eqlens import checkpoint as ck
from eqlens.core.run_config import TrainConfig
from eqlens.training import train

from .conftest import ROOT, no_exception

TINY = {"widths": [4, 8]}


def _run(checkpoint_dir, name: str, epochs: int = 1, stop_after: int | None = None):
    """A tiny cnn run on simulated binary lenses in the app's checkpoint folder (``stop_after``: stopped there,
    as a cancelled app job or a spent budget leaves it)."""
    out = checkpoint_dir / name
    config = TrainConfig(model="cnn", data="binary", out=str(out), epochs=epochs, batch_size=4, train_size=8,
                         val_size=2, test_size=2, image_size=settings.UNTRAINED_IMAGE_SIZE, robustness_size=0,
                         device="cpu", eval_batch_size=4, model_kwargs=TINY, lr=1e-3, threads=1)
    stop = threading.Event()
    progress = None if stop_after is None else (lambda p: p.phase == "val" and p.epoch == stop_after and stop.set())
    train(config, progress=progress, stop_event=stop)
    return out


def _card(folder):
    return json.loads((folder / ck.CARD_FILE).read_text())


def _finish(at):
    job = at.session_state[state.TRAIN_JOB]
    assert job.join(120), "the tiny run did not finish"
    at.run()
    no_exception(at)
    return job.snapshot()


def _chart(at, key: str) -> dict:
    """The plotly figure (JSON) of the chart ``key`` on the page."""
    (chart,) = [e for e in at.get("plotly_chart") if e.key == key]
    return json.loads(chart.proto.spec)


def test_the_forms_keep_their_values_when_you_leave_the_page_and_come_back(app_test, checkpoint_dir):
    _run(checkpoint_dir, "cnn_a")  # something to fine-tune and a history to look at
    at = app_test("views/train.py")
    at.selectbox(key="train_model").set_value("gcnn")
    at.number_input(key="train_epochs").set_value(7)
    at.number_input(key="train_budget").set_value(12.5)
    at.number_input(key="train_ft_epochs").set_value(3)
    at.slider(key="train_history_smoothing").set_value(0.6)
    at.run()
    at.switch_page("views/learn.py").run()
    no_exception(at)
    at.switch_page("views/train.py").run()
    no_exception(at)
    assert at.selectbox(key="train_model").value == "gcnn"
    assert at.number_input(key="train_epochs").value == 7
    assert at.number_input(key="train_budget").value == 12.5
    assert at.number_input(key="train_ft_epochs").value == 3
    assert at.slider(key="train_history_smoothing").value == 0.6


def test_a_finished_run_shows_its_results_only_while_the_form_still_describes_it(app_test, checkpoint_dir):
    at = app_test("views/train.py")
    at.button(key="train_start").click().run()
    assert _finish(at).state == "done"
    assert any("Checkpoint saved" in m.value for m in at.markdown)
    assert any(m.value.startswith("**Run `cnn_") for m in at.markdown)
    at.number_input(key="train_epochs").set_value(3).run()
    no_exception(at)
    assert not any("Checkpoint saved" in m.value for m in at.markdown)
    assert any("The form has changed since" in c.value for c in at.caption)
    at.number_input(key="train_epochs").set_value(1).run()  # back to the run's settings: back on screen
    assert any("Checkpoint saved" in m.value for m in at.markdown)


def test_continue_goes_on_in_the_run_folder_with_more_epochs(app_test, checkpoint_dir):
    out = _run(checkpoint_dir, "cnn_done")
    at = app_test("views/train.py")
    assert at.selectbox(key="train_resume_pick").value == str(out)
    assert at.button(key="train_resume").disabled  # finished: nothing left until epochs are added
    at.number_input(key="train_resume_more").set_value(1).run()
    at.button(key="train_resume").click().run()
    no_exception(at)
    snap = _finish(at)
    assert snap.state == "done", snap.message
    card = _card(out)
    assert [h["epoch"] for h in card["history"]] == [1, 2] and card["training"]["complete"] is True
    assert card["training"]["config"]["resume"] is True
    assert [p.name for p in checkpoint_dir.iterdir()] == ["cnn_done"]  # no new folder


def test_a_stopped_run_is_listed_as_partial_and_continues_to_its_planned_end(app_test, checkpoint_dir):
    out = _run(checkpoint_dir, "cnn_stopped", epochs=2, stop_after=1)
    (run,) = runs.list_runs(checkpoint_dir)
    assert run.partial and run.resumable and run.status == "partial: epoch 1 of 2"
    at = app_test("views/train.py")
    pick = at.selectbox(key="train_resume_pick")
    assert pick.value == str(out) and "partial: epoch 1 of 2" in pick.format_func(pick.value)
    assert not at.button(key="train_resume").disabled
    at.button(key="train_resume").click().run()
    assert _finish(at).state == "done"
    assert [h["epoch"] for h in _card(out)["history"]] == [1, 2]
    assert runs.read_run(out).status == "complete: 2 epochs"


def test_fine_tune_starts_a_new_run_from_the_checkpoint_weights(app_test, checkpoint_dir, runs_dir):
    source = _run(checkpoint_dir, "cnn_source")
    at = app_test("views/train.py")
    assert at.selectbox(key="train_ft_source").value == str(source)
    at.selectbox(key="train_ft_sim").set_value("binary")
    at.button(key="train_ft_start").click().run()
    no_exception(at)
    snap = _finish(at)
    assert snap.state == "done", snap.message
    (tuned,) = [p for p in runs_dir.iterdir() if p.name.startswith("cnn_source_ft_")]  # an app run, not shipped
    card = _card(tuned)
    assert card["training"]["config"]["init_from"] == str(source)
    assert card["training"]["initialised_from"]["source"] == str(source)
    assert card["model"]["build_config"] == _card(source)["model"]["build_config"]


def test_fine_tuning_a_plain_model_keeps_the_group_its_run_augmented_with_and_the_cards_input(checkpoint_dir):
    """A plain model has no group; its fine-tune augments with the group its own run trained with (here
    D4), not C4 by default, and takes the card's task, crop and mask (issue 14)."""
    source = _run(checkpoint_dir, "cnn_d4")
    card = _card(source)
    card["training"]["config"]["group"] = "D4"
    card["input"] = {**card["input"], "circular_mask": False}
    config = runs.finetune_config(source, card, out=str(checkpoint_dir / "tuned"), data="binary", epochs=1,
                                  lr=1e-3, batch_size=4, train_size=8)
    assert (config.group, config.task, config.circular_mask, config.crop) == ("D4", "classification", False, None)
    assert config.model_kwargs == TINY and config.init_from == str(source)


def test_a_budget_too_small_for_one_epoch_is_refused_in_words_and_leaves_no_folder(app_test, checkpoint_dir,
                                                                                   runs_dir):
    at = app_test("views/train.py")
    at.number_input(key="train_budget").set_value(0.1)
    at.number_input(key="train_steps").set_value(100_000)
    at.toggle(key="train_fresh").set_value(True)
    at.button(key="train_start").click().run()
    snap = _finish(at)
    assert snap.state == "failed"
    assert "more than the 0.1 min budget" in snap.message and "Error" not in snap.message.split(":")[0]
    assert any("more than the 0.1 min budget" in e.value for e in at.error)
    assert list(checkpoint_dir.iterdir()) == [] and not (runs_dir.exists() and any(runs_dir.iterdir()))


def test_a_plain_runs_row_and_line_name_no_group_even_from_a_card_before_issue_14(checkpoint_dir):
    shutil.copytree(ROOT / "checkpoints" / "model_i_cnn", checkpoint_dir / "old_cnn")
    card_file = checkpoint_dir / "old_cnn" / "model_card.json"
    old = json.loads(card_file.read_text())
    old["group"] = old["model"]["build_config"]["group"] = "C4"  # as written before issue 14
    card_file.write_text(json.dumps(old))
    assert runs.read_run(checkpoint_dir / "old_cnn").summary()["group"] is None
    assert runs.model_and_group("cnn", "C4") == "cnn" and runs.model_and_group("gcnn", "C8") == "gcnn C8"


def test_the_run_history_overlays_runs_read_back_from_the_checkpoints_folder(app_test, checkpoint_dir):
    _run(checkpoint_dir, "cnn_a", epochs=2)
    _run(checkpoint_dir, "cnn_b", epochs=2, stop_after=1)
    at = app_test("views/train.py")  # a new session: nothing but the folder to go on
    no_exception(at)
    table = at.dataframe[0].value
    statuses = dict(zip(table["run"], table["status"], strict=True))
    assert statuses == {"cnn_a": "complete: 2 epochs", "cnn_b": "partial: epoch 1 of 2"}
    assert sorted(at.multiselect(key="train_history_runs").value) == ["cnn_a", "cnn_b"]
    at.slider(key="train_history_smoothing").set_value(0.5)
    at.toggle(key="train_history_log").set_value(True).run()
    no_exception(at)
    spec = _chart(at, "train_history_chart")
    assert spec["layout"]["yaxis"]["type"] == "log"
    names = {t["name"] for t in spec["data"]}
    assert names == {"cnn_a", "cnn_b"}
    at.multiselect(key="train_history_runs").set_value(["cnn_a"]).run()
    assert {t["name"] for t in _chart(at, "train_history_chart")["data"]} == {"cnn_a"}


def test_a_run_finished_in_this_session_joins_the_runs_overlaid_once(app_test, checkpoint_dir):
    _run(checkpoint_dir, "cnn_a")
    at = app_test("views/train.py")
    assert at.multiselect(key="train_history_runs").value == ["cnn_a"]
    at.button(key="train_start").click().run()
    _finish(at)
    mine = at.session_state[state.TRAIN_JOB].config.out.rsplit("/", 1)[-1]
    assert at.multiselect(key="train_history_runs").value == ["cnn_a", mine]
    at.multiselect(key="train_history_runs").set_value(["cnn_a"]).run()  # the user's choice stands
    at.run()
    assert at.multiselect(key="train_history_runs").value == ["cnn_a"]
    no_exception(at)
    assert not at.warning


def test_the_picked_run_stays_picked_when_runs_change_and_its_results_stay_on_screen(app_test, checkpoint_dir):
    a = _run(checkpoint_dir, "cnn_a", epochs=2, stop_after=1)
    _run(checkpoint_dir, "cnn_b", epochs=2, stop_after=1)
    at = app_test("views/train.py")
    at.selectbox(key="train_ft_source").set_value(str(a))
    at.selectbox(key="train_resume_pick").set_value(str(a)).run()
    at.button(key="train_resume").click().run()
    assert _finish(at).state == "done"  # cnn_a is complete now: its label and place in the list change
    _run(checkpoint_dir, "cnn_c", epochs=2, stop_after=1)  # and another session's run lands in the folder
    at.run()
    no_exception(at)
    assert at.selectbox(key="train_resume_pick").value == str(a)
    assert at.selectbox(key="train_ft_source").value == str(a)
    assert any("Checkpoint saved" in m.value for m in at.markdown)


def test_a_run_on_a_folder_outside_the_data_folders_is_not_continued_from_the_page(app_test, checkpoint_dir, tmp_path):
    import numpy as np

    folder = tmp_path / "outside"
    rng = np.random.default_rng(0)
    for name in ("no_sub", "sub"):
        (folder / name).mkdir(parents=True)
        for i in range(6):
            np.save(folder / name / f"{name}_sim_{i}.npy", rng.random((24, 24)).astype(np.float32))
    out = checkpoint_dir / "cnn_outside"
    config = TrainConfig(model="cnn", data=str(folder), out=str(out), epochs=2, batch_size=4, image_size=23,
                         robustness_size=0, device="cpu", eval_batch_size=4, model_kwargs=TINY, threads=1)
    stop = threading.Event()
    train(config, progress=lambda p: p.phase == "val" and stop.set(), stop_event=stop)
    at = app_test("views/train.py")
    at.button(key="train_resume").click().run()
    no_exception(at)
    assert state.TRAIN_JOB not in at.session_state
    assert any(e.value.startswith("Cannot continue this run") and "data folders" in e.value for e in at.error)


def test_a_partial_snapshot_without_resume_state_is_offered_to_fine_tune_not_to_continue(app_test, checkpoint_dir):
    import shutil

    out = _run(checkpoint_dir, "cnn_snapshot", epochs=2, stop_after=1)
    shutil.rmtree(out / ck.LAST_DIR)  # as a shipped mid-campaign checkpoint: its best epoch, no last/
    run = runs.read_run(out)
    assert run.partial and not run.resumable and run.status == "partial: epoch 1 of 2, no resume state"
    at = app_test("views/train.py")
    assert "train_resume_pick" not in [s.key for s in at.selectbox]
    assert at.selectbox(key="train_ft_source").value == str(out)


def test_a_folder_with_a_corrupt_card_is_left_out_and_the_page_still_renders(app_test, checkpoint_dir):
    broken = checkpoint_dir / "broken"
    broken.mkdir()
    (broken / ck.CARD_FILE).write_text("{ not json")
    assert runs.list_runs(checkpoint_dir) == [] and runs.read_run(broken) is None
    at = app_test("views/train.py")
    no_exception(at)
    assert any("No runs in" in i.value for i in at.info)
