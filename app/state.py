"""Per-session state: one place for the st.session_state keys the pages share.

Everything here lives in the session (each browser tab its own); shared objects (models,
simulators) are only ever reached through the caches of :mod:`app.catalog` and :mod:`app.lenses`.
"""

from __future__ import annotations

import streamlit as st

UPLOADED_CHECKPOINTS = "uploaded_checkpoints"  # key -> (file name, bytes)
EXPLORE_REQUEST = "explore_request"  # set by other pages, consumed by Explore
WHATIF_REQUEST = "whatif_request"  # a simulated lens (config, class index, seed) for the What-if page
TRAIN_JOB = "train_job"
EVALUATION = "evaluation"
CONFUSION_CELL = "confusion_cell"


def uploaded_checkpoints() -> dict:
    return st.session_state.setdefault(UPLOADED_CHECKPOINTS, {})


def request_explore(model_key: str, lens, angle: float = 0.0) -> None:
    """Ask the Explore page to open ``lens`` with model ``model_key`` (read once on arrival)."""
    st.session_state[EXPLORE_REQUEST] = {"model_key": model_key, "lens": lens, "angle": float(angle)}


def take_explore_request() -> dict | None:
    return st.session_state.pop(EXPLORE_REQUEST, None)


def request_whatif(config_name: str, class_index: int, seed: int) -> None:
    """Ask the What-if page to edit simulated lens ``(config, class, seed)`` (read once on arrival)."""
    st.session_state[WHATIF_REQUEST] = (str(config_name), int(class_index), int(seed))


def take_whatif_request() -> tuple[str, int, int] | None:
    return st.session_state.pop(WHATIF_REQUEST, None)
