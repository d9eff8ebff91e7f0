"""Train: pick a model, group, data and budget; a background job trains it (GPU when present)
with live curves, progress and a cancel button; the checkpoint then appears on every page."""

from __future__ import annotations

import dataclasses
import datetime as dt
from pathlib import Path

import streamlit as st

from app import catalog, figures, lenses, settings, state
from app.jobs import JobConflict, TrainingJob, claim_output_folder
from eqlens.errors import EqlensError

SIM_DATA = ("model_i", "binary", "model_ii")


def job_form() -> dict | None:
    """The run's settings, or None until the user presses Start."""
    from eqlens.groups import SUPPORTED_GROUPS
    from eqlens.models import names, spec

    c1, c2, c3 = st.columns(3)
    model_names = names()
    model = c1.selectbox("Model", model_names, index=model_names.index("cnn") if "cnn" in model_names else 0,
                         key="train_model", help="; ".join(f"{n}: {spec(n).description}" for n in model_names))
    group = c2.selectbox("Group", SUPPORTED_GROUPS, key="train_group", disabled=not spec(model).uses_group)
    source = c3.radio("Data", ["simulated", "DeepLense folder"], key="train_data_kind", horizontal=True)
    data = (c3.selectbox("Simulation", SIM_DATA, key="train_sim") if source == "simulated"
            else c3.text_input("Folder", key="train_folder", placeholder="data/Model_I"))
    b1, b2, b3, b4 = st.columns(4)
    tiny = settings.TINY
    epochs = b1.number_input("Epochs", 1, 200, 1 if tiny else 5, key="train_epochs")
    train_size = b2.number_input("Training images", 4, 100_000, 8 if tiny else 512, key="train_size",
                                 help="simulated data only; a folder is used whole")
    image_size = b3.number_input("Image size", 17, 257, settings.UNTRAINED_IMAGE_SIZE, step=2, key="train_image_size",
                                 help="odd sizes keep 90-deg rotations exact for the invariant models")
    batch = b4.number_input("Batch size", 1, 512, 4 if tiny else 32, key="train_batch")
    turn_scenes = st.toggle("turn the sky, not the picture", value=False, key="train_turn_scenes",
                            disabled=source != "simulated",
                            help="augment by rendering each training lens at a random orientation (simulated data) "
                                 "instead of resampling the picture, which also smooths its noise")
    device = "GPU (cuda)" if settings.DEVICE == "cuda" else "CPU"
    st.caption(f"runs on {device}; the checkpoint goes to {settings.CHECKPOINT_DIR}")
    if not st.button("Start training", type="primary", key="train_start", disabled=not data):
        return None
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    small = max(2, int(train_size) // 8)
    return dict(model=model, group=group, data=data, epochs=int(epochs), batch_size=int(batch),
                image_size=int(image_size), train_size=int(train_size), val_size=small, test_size=small,
                out=str(settings.CHECKPOINT_DIR / f"{model}_{group}_{stamp}"), device="auto",
                robustness_size=min(small, 8), eval_batch_size=int(batch),
                augment_mode="scene" if turn_scenes and source == "simulated" else "image")


def start(settings_dict: dict) -> None:
    from eqlens.training import TrainConfig

    try:
        if settings_dict["data"] not in SIM_DATA:  # a folder: inside the data roots, scanned with bounds
            settings_dict = {**settings_dict, "data": lenses.training_folder(settings_dict["data"])}
        config = TrainConfig(**settings_dict)
    except (EqlensError, TypeError, ValueError) as err:
        st.error(f"Cannot train with these settings: {err}")
        return
    # Its own new folder (two Starts in the same second get two): a run never writes into another's.
    launch(dataclasses.replace(config, out=str(claim_output_folder(config.out))))


def launch(config) -> None:
    try:
        st.session_state[state.TRAIN_JOB] = TrainingJob(config).start()
    except JobConflict as err:
        st.error(str(err))


def resume_form():
    """The settings that continue a run which stopped early (killed, cancelled), or None until the user
    picks one and presses Resume. Runs being trained now are not offered."""
    partial = {str(p): f"{p.name} ({catalog.run_status(p).label})" for p in catalog.partial_runs()}
    if not partial:
        return None
    st.subheader("Resume a run that stopped early")
    choice = st.selectbox("Partial checkpoint", list(partial), key="train_resume_pick", format_func=partial.get,
                          help="it goes on from its last finished epoch with the settings its card records")
    if not st.button("Resume training", key="train_resume"):
        return None
    try:
        return catalog.resume_config(Path(choice))
    except EqlensError as err:
        st.error(f"Cannot resume {Path(choice).name}: {err}")
        return None


def _cancel() -> None:
    job = st.session_state.get(state.TRAIN_JOB)
    if job is not None:
        job.cancel()


def job_panel() -> None:
    """Polls the job while it runs; the full page reruns once when it ends (checkpoint lists update)."""
    job: TrainingJob | None = st.session_state.get(state.TRAIN_JOB)
    if job is None:
        return
    snap = job.snapshot()
    latest = snap.latest
    step_text = f"step {latest.get('step', 0)}" + (f" / {latest['steps']}" if latest.get("steps") else "")
    epoch_text = f"epoch {latest.get('epoch', 0)}" + (f" / {latest['epochs']}" if latest.get("epochs") else "")
    st.progress(snap.fraction, text=f"{snap.state}: {epoch_text}, {step_text}, {snap.elapsed_s:.0f} s")
    cols = st.columns(4)
    for col, key in zip(cols, ("loss", "accuracy", "val_loss", "val_accuracy"), strict=True):
        col.metric(key.replace("_", " "), f"{latest[key]:.4f}" if key in latest else "-")
    if snap.history:
        st.plotly_chart(figures.training_curves(snap.history), key="train_curves", width="stretch", theme=None)
    if not snap.finished:
        st.button("Cancel", key="train_cancel", on_click=_cancel)
        return
    if snap.state == "failed":
        st.error(f"Training failed: {snap.message}")
    else:
        (st.success if snap.state == "done" else st.warning)(f"Training {snap.message}.")
        saved = getattr(snap.result, "checkpoint", None)
        offered = {str(p) for p in catalog.checkpoint_paths()}
        out = str(job.config.out) if job.config.out else None
        if saved is not None and out in offered:
            st.write(f"Checkpoint saved: `{out}`: it is now offered on every page.")
            if snap.state == "cancelled":
                st.caption("The run stopped early: its checkpoint is listed as partial and can be resumed here.")
            if st.button("Open it in Explore", key="train_open"):
                st.session_state["explore_model"] = f"ckpt:{out}"
                st.switch_page("views/explore.py")
        elif snap.state == "cancelled":
            st.caption("No checkpoint was written before the run stopped.")
    if not st.session_state.get("train_seen_end"):
        st.session_state["train_seen_end"] = True
        st.rerun()  # full rerun: stop polling, refresh the model lists


st.title("Train")
job = st.session_state.get(state.TRAIN_JOB)
running = job is not None and not job.snapshot().finished
if not running:
    request = job_form()
    resumed = resume_form()
    if request:
        st.session_state["train_seen_end"] = False
        start(request)
        running = st.session_state.get(state.TRAIN_JOB) is not None
    elif resumed is not None:
        st.session_state["train_seen_end"] = False
        launch(resumed)
        running = st.session_state.get(state.TRAIN_JOB) is not None
st.fragment(job_panel, run_every=1.0 if running else None)()
