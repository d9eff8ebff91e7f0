"""Selectors the pages share: a model picker and a lens picker. Each returns plain results and
reports problems with st.error/st.warning so a page never crashes on a bad file."""

from __future__ import annotations

import streamlit as st

from app import catalog, lenses, settings, state
from eqlens.errors import CheckpointError, DataError, EqlensError


def model_selector(prefix: str, label: str = "Model", default: int = 0) -> catalog.LoadedModel | None:
    """Selectbox over every model (checkpoints, uploads, untrained), a group choice for untrained
    group models, and a checkpoint uploader. Returns the loaded model or None (message shown)."""
    from eqlens.groups import SUPPORTED_GROUPS
    from eqlens.models import names, spec

    uploaded = state.uploaded_checkpoints()
    with st.expander("Upload a checkpoint", expanded=False):
        file = st.file_uploader("checkpoint file", key=f"{prefix}_ckpt_upload",
                                help="a checkpoint written by eqlens (file or zipped folder with model_card.json)")
        if file is not None:
            data = file.getvalue()
            key = catalog.upload_key(data)
            uploaded.setdefault(key, (file.name, data))
    options = catalog.entries(uploaded)
    labels = {e.key: e.label for e in options}
    select_key = f"{prefix}_model"
    base_key = st.session_state.get(select_key)
    if base_key is not None and base_key not in labels:
        labels[base_key] = base_key.split(":", 1)[-1]
    keys = list(labels)
    if base_key is None:
        st.session_state[select_key] = keys[min(default, len(keys) - 1)]
    chosen = st.selectbox(label, keys, format_func=labels.get, key=select_key)
    if chosen.startswith("untrained:"):
        name, group = chosen.split(":")[1:3]
        if name in names() and spec(name).uses_group:
            groups = list(SUPPORTED_GROUPS)
            group = st.selectbox("Group", groups, index=groups.index(group) if group in groups else 0,
                                 key=f"{prefix}_group")
            chosen = catalog.untrained_key(name, group)
    try:
        loaded = catalog.load(chosen, uploaded)
    except (CheckpointError, EqlensError, ValueError, OSError) as err:
        st.error(f"Cannot load this model: {err}")
        return None
    if not loaded.trained:
        st.caption(f"untrained weights (seed 0), {loaded.image_size}x{loaded.image_size} input: "
                   "train one on the Train page")
    return loaded


def lens_selector(prefix: str, follow: catalog.LoadedModel | None = None) -> lenses.LensImage | None:
    """Simulate a lens, take one from a DeepLense folder, or upload one. The choice is kept in
    this session's state under ``{prefix}_lens``; returns it, or None with a message. ``follow``: a
    model whose card names a built-in simulation; whenever it changes, the simulation follows it
    (a binary checkpoint is shown binary lenses), and the user may still pick another."""
    lens_key = f"{prefix}_lens"
    if follow is not None:
        _follow_model_data(prefix, follow)
    source = st.radio("Image", ["Simulate", "DeepLense folder", "Upload"], key=f"{prefix}_source", horizontal=True)
    try:
        if source == "Simulate":
            lens = _simulate_controls(prefix)
        elif source == "DeepLense folder":
            lens = _folder_controls(prefix)
        else:
            lens = _upload_controls(prefix)
    except (DataError, EqlensError, ValueError, OSError) as err:
        st.error(f"Cannot use this image: {err}")
        lens = None
    except ImportError as err:
        st.warning(f"This image source is not available in this installation ({err}).")
        lens = None
    if lens is not None:
        st.session_state[lens_key] = lens
    return st.session_state.get(lens_key)


def _follow_model_data(prefix: str, loaded: catalog.LoadedModel) -> None:
    """Set the Simulation choice to the model's training data once per model change (before the
    widget exists, as Streamlit requires)."""
    data = (loaded.card.get("data") or {}).get("spec")
    followed = f"{prefix}_sim_followed"
    if st.session_state.get(followed) == loaded.key:
        return
    st.session_state[followed] = loaded.key
    if data in lenses.SIM_CONFIGS:
        st.session_state[f"{prefix}_sim_config"] = data


def _simulate_controls(prefix: str) -> lenses.LensImage:
    config = st.selectbox("Simulation", lenses.SIM_CONFIGS, key=f"{prefix}_sim_config")
    names = lenses.class_names(config)
    class_key = f"{prefix}_sim_class_{config}"  # one widget per simulation: its own classes, its own choice
    class_index = st.selectbox("Class", range(len(names)), format_func=lambda i: names[i], key=class_key)
    seed = st.number_input("Seed", min_value=0, max_value=10**6, value=0, step=1, key=f"{prefix}_sim_seed")
    return lenses.simulate(config, int(class_index), int(seed))


def _folder_controls(prefix: str) -> lenses.LensImage | None:
    root = st.text_input("Folder", key=f"{prefix}_folder", placeholder="/data/Model_I_test",
                         help="a DeepLense folder: one sub-folder per class of .npy files")
    if not root:
        st.info("Type the path of a DeepLense folder.")
        return None
    dataset = lenses.folder_index(root)
    n = len(dataset.files)
    index = st.number_input(f"Image (0-{n - 1})", min_value=0, max_value=max(n - 1, 0), value=0,
                            key=f"{prefix}_folder_index")
    return lenses.from_folder(root, int(index))


def _upload_controls(prefix: str) -> lenses.LensImage | None:
    file = st.file_uploader("Lens image (.npy, .png, .fits)", type=["npy", "png", "jpg", "jpeg", "fits", "fit"],
                            key=f"{prefix}_image_upload")
    if file is None:
        st.info("Upload a square lens image.")
        return None
    return lenses.from_upload(file.getvalue(), file.name)


def image_size_note(loaded: catalog.LoadedModel, lens: lenses.LensImage) -> None:
    h, w = lens.image.shape
    if (h, w) != (loaded.image_size, loaded.image_size):
        st.caption(f"image {h}x{w} resized to the model's {loaded.image_size}x{loaded.image_size}")


__all__ = ["image_size_note", "lens_selector", "model_selector", "settings"]
