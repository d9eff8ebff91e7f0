"""Train: start a new run, continue a run from its last finished epoch, or fine-tune a new run from any
checkpoint's weights, each as a background job (GPU when present) with live curves, progress and a cancel
button, under the command line's time-budget and resume machinery (``eqlens train --minutes``,
``--resume``, ``--init-from``); and the history of every run in the checkpoints folder, read back from
the cards. The forms keep their values for the whole browser session (``persist_state``)."""

from __future__ import annotations

import dataclasses
import datetime as dt
from pathlib import Path

import streamlit as st

from app import card_panel, catalog, figures, jobs, lenses, markup, runs, settings, state
from app.jobs import JobConflict, TrainingJob, claim_output_folder
from eqlens.errors import EqlensError

SIM_DATA = ("model_i", "model_i_line", "binary", "model_ii")  # model_i_line: the line vortex of old cards
TABS = ("New run", "Continue a run", "Fine-tune a checkpoint", "Run history")
JOB_PARAM = "job"  # the address's query parameter holding the session's job token
START_ERROR = "train_start_error"  # (tab, message): a Start refused before any job ran
JOB_ORIGIN = "train_job_origin"  # {"tab": ..., "form": {key: value}}: where the session's job was started from
KEPT_TAB = "train_tab_kept"
SESSION = "session"  # persist_state: a widget keeps its value across pages for the whole browser session
LEARNING_RATES = (1e-3, 3e-4, 1e-4, 3e-5, 1e-5)

NEW_KEYS = ("train_model", "train_group", "train_data_kind", "train_sim", "train_folder", "train_epochs",
            "train_size", "train_image_size", "train_batch", "train_rotations", "train_budget", "train_steps",
            "train_fresh", "train_crop", "train_threads")
CONTINUE_KEYS = ("train_resume_pick", "train_resume_more", "train_resume_budget", "train_resume_threads")
FINETUNE_KEYS = ("train_ft_source", "train_ft_data_kind", "train_ft_sim", "train_ft_folder", "train_ft_epochs",
                 "train_ft_lr", "train_ft_size", "train_ft_batch", "train_ft_rotations", "train_ft_budget",
                 "train_ft_steps", "train_ft_fresh", "train_ft_threads")
FORM_KEYS = {"new": NEW_KEYS, "continue": CONTINUE_KEYS, "finetune": FINETUNE_KEYS}


def _stamp() -> str:
    return dt.datetime.now().strftime("%Y%m%d-%H%M%S")


def _optional(value, zero=0):
    """A number field's value, None for its 'not set' value (0)."""
    return None if value is None or value == zero else value


def campaign_fields(prefix: str, simulated: bool, crop: bool) -> None:
    """The campaign settings of the command line (``--minutes``, ``--steps-per-epoch``, ``--fresh-data``,
    ``--crop``, ``--threads``) in an expander; 0 leaves a setting off (read back by :func:`_campaign`)."""
    with st.expander("Time budget and campaign settings"):
        c1, c2, c3 = st.columns(3)
        c1.number_input("Time budget (min, 0: none)", 0.0, 100_000.0, 0.0, step=5.0, format="%.2f",
                        key=f"{prefix}_budget", persist_state=SESSION,
                        help="whole epochs while the next one still fits, then stop with the state written: the run "
                             "is listed as partial and can be continued. A budget that cannot hold one epoch is "
                             "refused before anything is written.")
        c2.number_input("Steps per epoch (0: one pass)", 0, 1_000_000, 0, key=f"{prefix}_steps",
                        persist_state=SESSION,
                        help="batches per epoch, cycling through the training images as often as needed")
        c3.number_input("CPU threads (0: torch's default)", 0, 1024, 0, key=f"{prefix}_threads",
                        persist_state=SESSION,
                        help="torch's CPU threads, for the whole server process while the run lasts")
        st.toggle("fresh simulated lenses every epoch", value=False, key=f"{prefix}_fresh",
                  disabled=not simulated, persist_state=SESSION,
                  help="never the same training image twice (simulated data; needs steps per epoch)")
        if crop:
            st.number_input("Native central crop (px, 0: whole frame)", 0, 2048, 0, key=f"{prefix}_crop",
                            persist_state=SESSION,
                            help="taken from the data's own images before resizing (e.g. 81 of Model I's 150 keeps "
                                 "the Einstein ring at full resolution); recorded in the card")


def sticky_selectbox(where, label: str, options: list, key: str, **kwargs):
    """A selectbox over options that come and go (runs on disk) that comes back to the user's choice: a
    changed option list makes Streamlit build a new widget, which would start again at the first option, and
    a run being trained drops out of some lists for a while. The choice is kept apart, changed by the user only."""
    kept_key = f"{key}_kept"

    def keep() -> None:
        st.session_state[kept_key] = st.session_state.get(key)

    kept = st.session_state.get(kept_key)
    choice = where.selectbox(label, options, index=options.index(kept) if kept in options else 0, key=key,
                             persist_state=SESSION, on_change=keep, **kwargs)
    if kept is None:
        st.session_state[kept_key] = choice
    return choice


def data_fields(prefix: str, column, default_sim: str | None = None) -> tuple[str, bool]:
    """The data choice: a simulation config or a DeepLense folder. Returns ``(data, simulated)``."""
    source = column.radio("Data", ["simulated", "DeepLense folder"], key=f"{prefix}_data_kind", horizontal=True,
                          persist_state=SESSION)
    if source == "simulated":
        index = SIM_DATA.index(default_sim) if default_sim in SIM_DATA else 0
        return column.selectbox("Simulation", SIM_DATA, index=index, key=f"{prefix}_sim",
                                persist_state=SESSION), True
    return column.text_input("Folder", key=f"{prefix}_folder", placeholder="data/Model_I",
                             persist_state=SESSION), False


def new_run_form(locked: bool) -> None:
    """Model, group, data and budget of a new run; Start launches it (:func:`new_run_config`)."""
    from eqlens.groups import SUPPORTED_GROUPS
    from eqlens.models import names, spec

    c1, c2, c3 = st.columns(3)
    model_names = names()
    model = c1.selectbox("Model", model_names, index=model_names.index("cnn") if "cnn" in model_names else 0,
                         key="train_model", help="; ".join(f"{n}: {spec(n).description}" for n in model_names),
                         persist_state=SESSION)
    c2.selectbox("Group", SUPPORTED_GROUPS, key="train_group", disabled=not spec(model).uses_group,
                 persist_state=SESSION)
    data, simulated = data_fields("train", c3)
    b1, b2, b3, b4 = st.columns(4)
    tiny = settings.TINY
    b1.number_input("Epochs", 1, 200, 1 if tiny else 5, key="train_epochs", persist_state=SESSION)
    b2.number_input("Training images", 4, 100_000, 8 if tiny else 512, key="train_size",
                    help="simulated data only; a folder is used whole", persist_state=SESSION)
    b3.number_input("Image size", 17, 257, settings.UNTRAINED_IMAGE_SIZE, step=2, key="train_image_size",
                    help="odd sizes keep 90-deg rotations exact for the invariant models",
                    persist_state=SESSION)
    b4.number_input("Batch size", 1, 512, 4 if tiny else 32, key="train_batch", persist_state=SESSION)
    rotations_field("train_rotations", simulated)
    campaign_fields("train", simulated, crop=True)
    device = "GPU (cuda)" if settings.DEVICE == "cuda" else "CPU"
    st.caption(f"runs on {device}; the run goes to {markup.code(settings.RUNS_DIR)} (offered on every page as an app "
               "run; the checkpoints folder keeps only shipped models)")
    st.button("Start training", type="primary", key="train_start", disabled=locked or not data, on_click=_start,
              args=("new",))


def _value(key: str, default=None):
    return st.session_state.get(key, default)


def _data(prefix: str) -> tuple[str, bool]:
    """The data the form names, ``(data, simulated)``: a simulation as it is, a folder only inside the data
    roots, scanned with bounds."""
    if _value(f"{prefix}_data_kind", "simulated") == "simulated":
        return _value(f"{prefix}_sim") or SIM_DATA[0], True
    return lenses.training_folder(_value(f"{prefix}_folder") or ""), False


def _campaign(prefix: str, simulated: bool, crop: bool) -> dict:
    chosen = dict(time_budget_min=_optional(_value(f"{prefix}_budget"), 0.0),
                  steps_per_epoch=_optional(_value(f"{prefix}_steps")),
                  fresh_data=bool(_value(f"{prefix}_fresh") and simulated),
                  threads=_optional(_value(f"{prefix}_threads")))
    if crop:
        chosen["crop"] = _optional(_value(f"{prefix}_crop"))
    return chosen


def new_run_config():
    from eqlens.core.run_config import TrainConfig

    data, simulated = _data("train")
    model, group, batch = _value("train_model"), _value("train_group"), int(_value("train_batch"))
    train_size = int(_value("train_size"))
    small = max(2, train_size // 8)
    config = TrainConfig(model=model, group=group, data=data, epochs=int(_value("train_epochs")), batch_size=batch,
                         image_size=int(_value("train_image_size")), train_size=train_size, val_size=small,
                         test_size=small, out=str(settings.RUNS_DIR / f"{model}_{group}_{_stamp()}"),
                         device="auto", robustness_size=min(small, 8), eval_batch_size=batch,
                         augment_mode=_augment_mode("train_rotations", simulated),
                         **_campaign("train", simulated, crop=True))
    # Its own new folder (two Starts in the same second get two): a run never writes into another's.
    return dataclasses.replace(config, out=str(claim_output_folder(config.out)))


ROTATION_CHOICES = {"image": "turn the picture", "scene": "turn the sky", "mixed": "the sky, half also the picture"}


def rotations_field(key: str, simulated: bool) -> None:
    """How training turns its lenses (``TrainConfig.augment_mode``); the sky only for simulated data."""
    st.segmented_control("Rotations in training", list(ROTATION_CHOICES), format_func=ROTATION_CHOICES.get,
                         default="image", required=True, key=key, disabled=not simulated, persist_state=SESSION,
                         help="turn the picture: resample it (any data; smooths the pixel noise). Turn the sky: "
                              "render each simulated lens at a random orientation (the instrument's own noise at "
                              "every angle; such a model never sees a resampled picture, so a slider's turns of an "
                              "upload confuse it). Both: turned renderings, half of them resampled once more.")


def _augment_mode(key: str, simulated: bool) -> str:
    """The form's rotation choice as an ``augment_mode``; ``image`` for folder data (or no choice made)."""
    chosen = _value(key)
    return chosen if simulated and chosen in ROTATION_CHOICES else "image"


def launch(config, tab: str, fresh_folder: bool = False) -> None:
    job = TrainingJob(config, remove_empty_out=fresh_folder)
    job.origin = {"tab": tab}
    st.session_state[state.TRAIN_JOB] = job.start()
    st.session_state[JOB_ORIGIN] = {"tab": tab, "form": _form_values(tab)}
    st.session_state["train_seen_end"] = False
    st.query_params[JOB_PARAM] = job.token  # a reload of this address finds the job again


def adopt(job: TrainingJob) -> None:
    """Make ``job`` (found by its token) this session's: its panel, progress and Cancel under its tab."""
    tab = job.origin.get("tab", "new")
    st.session_state[state.TRAIN_JOB] = job
    st.session_state[JOB_ORIGIN] = {"tab": tab, "form": None}
    st.session_state["train_seen_end"] = job.snapshot().finished
    st.session_state[KEPT_TAB] = TABS[("new", "continue", "finetune").index(tab)] if tab in (
        "new", "continue", "finetune") else TABS[0]
    st.query_params[JOB_PARAM] = job.token


def find_own_job() -> None:
    """After a reload (a new session), the job the address names (``?job=<token>``) is this session's again."""
    if st.session_state.get(state.TRAIN_JOB) is None:
        job = jobs.find(st.query_params.get(JOB_PARAM))
        if job is not None:
            adopt(job)


def _take_over() -> None:
    job = jobs.find((st.session_state.get("train_adopt_token") or "").strip())
    if job is None:
        st.session_state[START_ERROR] = ("server", "No job of this server has that token.")
        return
    adopt(job)


def server_jobs_panel(refused) -> None:
    """The trainings this server runs for other sessions (or for this browser before a reload): what they
    train and how far; the token a job was started with makes it this session's, with its Cancel."""
    mine = st.session_state.get(state.TRAIN_JOB)
    others = [job for job in jobs.server_jobs() if job is not mine]
    if not others and not (refused and refused[0] == "server"):
        return
    with st.expander(f"Trainings running on this server: {len(others)}", expanded=mine is None):
        for job in others:
            snap = job.snapshot()
            out = Path(str(job.config.out)).name if getattr(job.config, "out", None) else "unsaved"
            st.caption(f"{markup.code(out)}: {markup.text(_describe(job.config))}; {snap.state}, "
                       f"{100 * snap.fraction:.0f}%, {snap.elapsed_s:.0f} s")
        c1, c2 = st.columns([3, 1])
        c1.text_input("Job token", key="train_adopt_token", type="password",
                      help="shown under the run by the page that started it (and in its address, ?job=...): "
                           "it opens the run here, with its progress and Cancel")
        c2.button("Open the run", key="train_adopt", on_click=_take_over)
        if refused and refused[0] == "server":
            st.error(refused[1])


def _start(tab: str) -> None:
    """The Start buttons' callback: it runs before the page, which then shows the job (Start buttons disabled)."""
    st.session_state.pop(START_ERROR, None)
    if _running():
        return
    builder, fresh, refusal = {"new": (new_run_config, True, "Cannot train with these settings"),
                               "continue": (continue_config, False, "Cannot continue this run"),
                               "finetune": (finetune_config, True, "Cannot fine-tune with these settings")}[tab]
    try:
        launch(builder(), tab, fresh_folder=fresh)
    except JobConflict as err:
        st.session_state[START_ERROR] = (tab, str(err))
    except (EqlensError, TypeError, ValueError, KeyError) as err:
        st.session_state[START_ERROR] = (tab, f"{refusal}: {err}")


def _form_values(tab: str) -> dict:
    return {key: st.session_state.get(key) for key in FORM_KEYS.get(tab, ())}


def continue_form(locked: bool) -> None:
    """A run to continue in its own folder from ``last/`` (:func:`continue_config`). Partial runs come first;
    a run being trained now is listed but cannot be continued meanwhile."""
    st.caption("Goes on from the run's last finished epoch in its own folder, with the settings its card records "
               "(`eqlens train --resume`). Possible while the folder holds `last/`; shipped checkpoints hold none: "
               "fine-tune them instead.")
    # Runs being trained stay listed (not continuable meanwhile): the list, and the choice, hold still.
    offered = sorted((r for r in runs.list_runs() if r.last is not None and r.config is not None),
                     key=lambda r: not r.partial)
    if not offered:
        st.info("No run to continue yet: a run started here (or with `eqlens train`) can be continued once it has "
                "finished an epoch.")
        return
    by_path = {str(r.path): r for r in offered}
    choice = sticky_selectbox(st, "Run", list(by_path), "train_resume_pick", format_func=lambda p: by_path[p].label,
                              help="partial runs (stopped, out of time budget, killed) first")
    run = by_path.get(choice) or offered[0]
    config = run.config or {}
    st.caption(f"{markup.text(runs.model_and_group(config.get('model'), config.get('group')))} on "
               f"{markup.text(config.get('data'))}, "
               f"{run.epochs_done} of "
               f"{run.epochs} epochs done, {config.get('schedule', 'constant')} learning rate "
               f"{config.get('lr')}, batch {config.get('batch_size')}")
    c1, c2, c3 = st.columns(3)
    more = c1.number_input("Add epochs", 0, 10_000, 0, key="train_resume_more", disabled=not run.can_grow,
                           persist_state=SESSION,
                           help="epochs beyond the ones the run was started with (0: finish as planned); a cosine "
                                "schedule is fixed by its epoch count and cannot grow")
    c2.number_input("Time budget (min, 0: none)", 0.0, 100_000.0, 0.0, step=5.0, format="%.2f",
                    key="train_resume_budget", persist_state=SESSION,
                    help="whole epochs while the next one still fits; continue again later")
    c3.number_input("CPU threads (0: torch's default)", 0, 1024, 0, key="train_resume_threads",
                    persist_state=SESSION)
    nothing_left = not run.partial and not (run.can_grow and more)
    if run.training_now:
        st.caption("This run is being trained now.")
    elif nothing_left:
        st.caption("This run finished: add epochs to continue it." if run.can_grow else
                   "This run finished its cosine schedule: fine-tune it to train further.")
    st.button("Continue training", type="primary", key="train_resume",
              disabled=locked or nothing_left or run.training_now,
              on_click=_start, args=("continue",))


def continue_config():
    run = runs.read_run(Path(_value("train_resume_pick") or ""))
    if run is None:
        raise EqlensError("the run is gone from the checkpoints folder")
    more = int(_value("train_resume_more") or 0) if run.can_grow else 0
    config = runs.continue_config(run, epochs=(run.epochs or 0) + more if more else None,
                                  time_budget_min=_optional(_value("train_resume_budget"), 0.0),
                                  threads=_optional(_value("train_resume_threads")))
    if config.data not in SIM_DATA:
        lenses.training_folder(config.data)  # a recorded folder too: only inside the data roots, scanned with bounds
    return config


def finetune_form(locked: bool) -> None:
    """A checkpoint to start a new run from, and that run's data and budget (:func:`finetune_config`)."""
    st.caption("A new run in its own folder whose model starts from the checkpoint's weights "
               "(`eqlens train --init-from`): same architecture, input size and crop; other data or other classes "
               "are fine (the classifier then starts fresh).")
    sources = [r for r in runs.list_runs() if r.best]  # one being trained stays listed: the choice holds still
    if not sources:
        st.info(f"No checkpoint in {markup.code(settings.CHECKPOINT_DIR)} or {markup.code(settings.RUNS_DIR)} to "
                "start from.")
        return
    preference = {name: rank for rank, name in enumerate(settings.DEFAULT_CHECKPOINTS)}
    sources.sort(key=lambda r: preference.get(r.name, len(preference)))  # stable: newest first after those
    by_path = {str(r.path): r for r in sources}
    choice = sticky_selectbox(st, "Checkpoint", list(by_path), "train_ft_source",
                              format_func=lambda p: by_path[p].label)
    source = by_path.get(choice) or sources[0]
    facts = card_panel.card_facts(source.best)
    what = markup.text(f"{facts.model} {facts.group or ''}".strip())
    st.caption(f"**{what}**, input: {card_panel.input_line(facts)}. Trained on "
               f"{card_panel.data_line(facts)}. Test: {card_panel.test_line(facts)}.")
    c1, c2 = st.columns([1, 2])
    data, simulated = data_fields("train_ft", c1, default_sim=facts.data_spec)
    b1, b2, b3, b4 = c2.columns(4)
    tiny = settings.TINY
    b1.number_input("Epochs", 1, 200, 1 if tiny else 5, key="train_ft_epochs", persist_state=SESSION)
    b2.selectbox("Learning rate", LEARNING_RATES, index=LEARNING_RATES.index(1e-4), key="train_ft_lr",
                 format_func=lambda v: f"{v:g}", persist_state=SESSION)
    b3.number_input("Training images", 4, 100_000, 8 if tiny else 512, key="train_ft_size",
                    persist_state=SESSION)
    b4.number_input("Batch size", 1, 512, 4 if tiny else 32, key="train_ft_batch",
                    persist_state=SESSION)
    rotations_field("train_ft_rotations", simulated)
    campaign_fields("train_ft", simulated, crop=False)
    if source.training_now:
        st.caption("This checkpoint is being trained now: fine-tune it once its run has ended.")
    st.button("Start fine-tuning", type="primary", key="train_ft_start",
              disabled=locked or not data or source.training_now, on_click=_start, args=("finetune",))


def finetune_config():
    source = runs.read_run(Path(_value("train_ft_source") or ""))
    if source is None or not source.best:
        raise EqlensError("the checkpoint is gone from the checkpoints folder")
    data, simulated = _data("train_ft")
    out = settings.RUNS_DIR / f"{source.name}_ft_{_stamp()}"
    config = runs.finetune_config(source.path, source.best, out=str(out), data=data,
                                  epochs=int(_value("train_ft_epochs")), lr=float(_value("train_ft_lr")),
                                  batch_size=int(_value("train_ft_batch")), train_size=int(_value("train_ft_size")),
                                  augment_mode=_augment_mode("train_ft_rotations", simulated),
                                  **_campaign("train_ft", simulated, crop=False))
    return dataclasses.replace(config, out=str(claim_output_folder(config.out)))


def history_view() -> None:
    """Every run in the checkpoints folder, from its cards: a table, and chosen runs' curves overlaid."""
    found = runs.list_runs()
    if not found:
        st.info(f"No runs in {markup.code(settings.CHECKPOINT_DIR)} or {markup.code(settings.RUNS_DIR)} yet.")
        return
    st.dataframe([r.summary() for r in found], hide_index=True, key="train_history_table",
                 column_config={"val accuracy": st.column_config.NumberColumn(format="%.3f"),
                                "test accuracy": st.column_config.NumberColumn(format="%.3f")})
    with_history = [r for r in found if r.history]
    if not with_history:
        st.caption("No run has a training history in its card.")
        return
    names = [r.name for r in with_history]
    job = st.session_state.get(state.TRAIN_JOB)
    mine = Path(job.config.out).name if job is not None and getattr(job.config, "out", None) else None
    picked_now = [n for n in st.session_state.get("train_history_runs", names[:3]) if n in names]
    if mine in names and st.session_state.get("train_history_added") != mine:  # this session's run joins, once
        st.session_state["train_history_added"] = mine
        picked_now = [*picked_now, mine] if mine not in picked_now else picked_now
    st.session_state["train_history_runs"] = picked_now
    c1, c2, c3 = st.columns([3, 1, 1])
    chosen = c1.multiselect("Runs to overlay", names, key="train_history_runs", persist_state=SESSION)
    smoothing = c2.slider("Smoothing", 0.0, 0.95, 0.0, step=0.05, key="train_history_smoothing",
                          persist_state=SESSION, help="exponential moving average over epochs (0: none)")
    log_loss = c3.toggle("log-scale loss", value=False, key="train_history_log", persist_state=SESSION)
    picked = {r.name: r.history for r in with_history if r.name in chosen}
    if not picked:
        st.caption("Pick runs to overlay.")
        return
    st.plotly_chart(figures.run_history(picked, float(smoothing), bool(log_loss)), key="train_history_chart",
                    width="stretch", theme=None)
    partial = [r for r in with_history if r.name in chosen and r.partial]
    if partial:
        st.caption("Stopped before their last epoch: " + ", ".join(
            f"{r.name} ({'can be continued' if r.resumable else 'a snapshot without resume state: fine-tune it'})"
            for r in partial))


def _cancel() -> None:
    job = st.session_state.get(state.TRAIN_JOB)
    if job is not None:
        job.cancel()


def _describe(config) -> str:
    """One line: what the job trains, from its config."""
    what = f"{runs.model_and_group(config.model, config.group)} on {Path(str(config.data)).name}"
    how = [f"{config.epochs} epochs", f"batch {config.batch_size}", f"lr {config.lr:g}"]
    if config.resume:
        how.insert(0, "continued from its last finished epoch")
    if config.init_from:
        how.insert(0, f"fine-tuned from {Path(config.init_from).name}")
    if config.time_budget_min:
        how.append(f"time budget {config.time_budget_min:g} min")
    if config.steps_per_epoch:
        how.append(f"{config.steps_per_epoch} steps per epoch" + (", fresh lenses" if config.fresh_data else ""))
    return f"{what}: {', '.join(how)}"


def job_panel() -> None:
    """Polls the job while it runs; the full page reruns once when it ends (checkpoint lists update)."""
    job: TrainingJob | None = st.session_state.get(state.TRAIN_JOB)
    if job is None:
        return
    snap = job.snapshot()
    out = str(job.config.out) if getattr(job.config, "out", None) else None
    st.markdown(f"**Run {markup.code(Path(out).name if out else 'unsaved')}**")
    st.caption(markup.text(_describe(job.config)))
    st.caption(f"Job token {markup.code(job.token)}: this page's address holds it (?job=...), so a reload finds "
               "the run again; typed under \"Trainings running on this server\" in another browser, it opens the run "
               "there.")
    latest = snap.latest
    step_text = f"step {latest.get('step', 0)}" + (f" / {latest['steps']}" if latest.get("steps") else "")
    epoch_text = f"epoch {latest.get('epoch', 0)}" + (f" / {latest['epochs']}" if latest.get("epochs") else "")
    st.progress(snap.fraction, text=f"{snap.state}: {epoch_text}, {step_text}, {snap.elapsed_s:.0f} s")
    cols = st.columns(4)
    score = "mae" if "mae" in latest and "accuracy" not in latest else "accuracy"  # a regression: MAE
    for col, key in zip(cols, ("loss", score, "val_loss", f"val_{score}"), strict=True):
        col.metric(key.replace("_", " "), f"{latest[key]:.4f}" if key in latest else "-")
    if snap.history:
        st.plotly_chart(figures.training_curves(snap.history), key="train_curves", width="stretch", theme=None)
    if not snap.finished:
        st.button("Cancel", key="train_cancel", on_click=_cancel)
        return
    if snap.state == "failed":
        st.error(f"Training failed: {markup.text(snap.message)}")
    else:
        (st.success if snap.state == "done" else st.warning)(f"Training {markup.text(snap.message)}.")
        saved = getattr(snap.result, "checkpoint", None)
        offered = {str(p) for p in catalog.checkpoint_paths()}
        if saved is not None and out in offered:
            st.write(f"Checkpoint saved: {markup.code(out)}: it is now offered on every page.")
            if snap.state == "cancelled" or getattr(snap.result, "budget_spent", False):
                st.caption("The run stopped early: it is listed as partial and can be continued "
                           "(Continue a run).")
            if st.button("Open it in Explore", key="train_open"):
                st.session_state["explore_model"] = f"ckpt:{out}"
                st.switch_page("views/explore.py")
        elif snap.state == "cancelled":
            st.caption("No checkpoint was written before the run stopped.")
    if not st.session_state.get("train_seen_end"):
        st.session_state["train_seen_end"] = True
        st.rerun()  # full rerun: stop polling, refresh the model lists


def job_here(tab: str, running: bool) -> None:
    """The session's job under the form it was started from, while that form still describes it."""
    job = st.session_state.get(state.TRAIN_JOB)
    origin = st.session_state.get(JOB_ORIGIN) or {"tab": "new", "form": None}
    if job is None:
        return
    if origin["tab"] != tab:
        if running:
            st.info("A run started from another tab is in progress: its progress is shown there.")
        return
    if not running and origin["form"] is not None and origin["form"] != _form_values(tab):
        name = Path(str(job.config.out)).name if getattr(job.config, "out", None) else "the last run"
        st.caption(f"The form has changed since {markup.code(name)} was started from it: its results are under Run "
                   "history.")
        return
    st.fragment(job_panel, run_every=1.0 if running else None)()


def _keep_tab() -> None:
    st.session_state[KEPT_TAB] = st.session_state.get("train_tab")


def _running() -> bool:
    job = st.session_state.get(state.TRAIN_JOB)
    return job is not None and not job.snapshot().finished


st.title("Train")
find_own_job()
running = _running()
new_tab, continue_tab, finetune_tab, history_tab = st.tabs(
    TABS, key="train_tab", on_change=_keep_tab, default=st.session_state.get(KEPT_TAB) or TABS[0])
refused = st.session_state.pop(START_ERROR, None)
server_jobs_panel(refused)
for tab, name, form in ((new_tab, "new", new_run_form), (continue_tab, "continue", continue_form),
                        (finetune_tab, "finetune", finetune_form)):
    with tab:
        form(running)
        if refused and refused[0] == name:
            st.error(markup.text(refused[1]))
        job_here(name, running)
with history_tab:
    history_view()
