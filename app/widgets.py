"""Selectors the pages share: a model picker and a lens picker. Each returns plain results and
reports problems with st.error/st.warning so a page never crashes on a bad file."""

from __future__ import annotations

import io
import re
import zipfile

import streamlit as st

from app import catalog, lenses, markup, settings, state
from eqlens.errors import CheckpointError, DataError, EqlensError


def model_selector(prefix: str, label: str = "Model", default: int = 0) -> catalog.LoadedModel | None:
    """Selectbox over every model (checkpoints, uploads, untrained), a group choice for untrained
    group models, and a checkpoint uploader. Returns the loaded model or None (message shown)."""
    from eqlens.groups import SUPPORTED_GROUPS
    from eqlens.models import names, spec

    uploaded = state.uploaded_checkpoints()
    with st.expander("Upload a checkpoint", expanded=False):
        file = st.file_uploader("checkpoint file", key=f"{prefix}_ckpt_upload",
                                help="a checkpoint written by eqlens: its model.safetensors (the model card is "
                                     "embedded), or its folder zipped")
        if file is not None:
            try:
                data = checkpoint_upload(file.getvalue(), file.name)
            except CheckpointError as err:
                st.error(f"Cannot load this model: {markup.text(user_message(err))}")
            else:
                uploaded.setdefault(catalog.upload_key(data), (file.name, data))
                while len(uploaded) > MAX_UPLOADED_CHECKPOINTS:
                    uploaded.pop(next(iter(uploaded)))
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
    if len(labels.get(chosen, "")) > 26:  # the sidebar's selector cuts longer names
        st.caption(markup.text(labels[chosen]))
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
        st.error(f"Cannot load this model: {markup.text(user_message(err))}")
        return None
    if not loaded.trained:
        st.caption(f"untrained weights (seed 0), {loaded.image_size}x{loaded.image_size} input: "
                   "train one on the Train page")
    return loaded


WEIGHTS_NAME = "model.safetensors"
# A zipped checkpoint gives no more than an upload may hold (server.maxUploadSize, 50 MB): a deflate bomb of
# 260 KB unzipped to 255 MB that the session then kept (+700 MB at its peak).
MAX_UNZIPPED_BYTES = 64 << 20
MAX_UPLOADED_CHECKPOINTS = 4  # per session, the oldest dropped
_TORCH_ADVICE = re.compile(r"\s*\(weights_only load failed:.*", re.S)


def checkpoint_upload(data: bytes, filename: str) -> bytes:
    """The bytes to load from an uploaded checkpoint: a ``model.safetensors`` (or a pure-tensor torch
    file) as is; a zipped checkpoint folder gives its ``model.safetensors`` (the shallowest one, never
    one under ``last/``), read with a size bound. CheckpointError for a zip without one."""
    if data[:2] != b"PK":
        return data
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            members = [info for info in archive.infolist() if not info.is_dir()]
            weights = [info for info in members if info.filename.rsplit("/", 1)[-1] == WEIGHTS_NAME
                       and "last" not in info.filename.split("/")[:-1]]
            if not weights:
                if any(info.filename.endswith("/data.pkl") or info.filename == "data.pkl" for info in members):
                    return data  # a torch archive: the loader reads it as plain tensors or refuses it
                raise CheckpointError(f"{filename}: a zip archive without {WEIGHTS_NAME}; zip the checkpoint "
                                      f"folder eqlens wrote, or upload its {WEIGHTS_NAME} alone")
            info = min(weights, key=lambda i: (i.filename.count("/"), i.filename))
            if info.file_size > MAX_UNZIPPED_BYTES:
                raise CheckpointError(f"{filename}: {info.filename} unzips to {info.file_size} bytes, over the "
                                      f"{MAX_UNZIPPED_BYTES}-byte limit")
            with archive.open(info) as member:
                weights_bytes = member.read(MAX_UNZIPPED_BYTES + 1)
    except CheckpointError:
        raise
    except (zipfile.BadZipFile, zipfile.LargeZipFile, RuntimeError, ValueError, OSError, EOFError,
            NotImplementedError) as err:
        raise CheckpointError(f"{filename}: unreadable zip archive ({type(err).__name__})") from None
    if len(weights_bytes) > MAX_UNZIPPED_BYTES:
        raise CheckpointError(f"{filename}: {info.filename} unzips to over {MAX_UNZIPPED_BYTES} bytes")
    from eqlens.checkpoint.io import embedded_card

    embedded_card(weights_bytes, f"{filename}: {info.filename}")  # not a safetensors file: refused, not kept
    return weights_bytes


def user_message(err: BaseException) -> str:
    """An error as the page shows it. A refused pickle says so in eqlens' words: torch's advice to retry
    with ``weights_only=False`` (which would run the file's code) is never shown."""
    text = str(err)
    if "weights_only" in text:
        text = _TORCH_ADVICE.sub("", text)
        if "weights_only" in text:
            text = "refusing a checkpoint that is not plain tensors"
        text += " (eqlens loads only plain tensors and never runs code from a checkpoint)"
    return text


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
        st.error(f"Cannot use this image: {markup.text(err)}")
        # The refused file replaces the image shown: the page must not go on showing the previous
        # image's panels and prediction as if they were this file's.
        st.session_state.pop(lens_key, None)
        return None
    if lens is not None:
        st.session_state[lens_key] = lens
    return st.session_state.get(lens_key)


def _follow_model_data(prefix: str, loaded: catalog.LoadedModel) -> None:
    """Set the Simulation choice to the model's training data once per model change (before the
    widget exists, as Streamlit requires)."""
    from eqlens.data.splits import data_spec_now  # the config rendering its data today (model_i_line for old cards)

    data = data_spec_now(loaded.card.data) if loaded.card is not None else None
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
    roots = ", ".join(str(root) for root in settings.DATA_ROOTS)
    root = st.text_input("Folder", key=f"{prefix}_folder", placeholder="Model_I_test",
                         help=f"a DeepLense folder (one sub-folder per class of .npy files) inside the data "
                              f"folders: {roots}; a relative path is taken inside them")
    if not root:
        st.info(f"Type the path of a DeepLense folder inside {markup.text(roots)}.")
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


def fit_to_crop(prefix: str, lens: lenses.LensImage | None, *models: catalog.LoadedModel | None
                ) -> lenses.LensImage | None:
    """``lens`` as the models can take it. A model whose card asks for a native central crop larger than the
    image (an 81 px crop of a 64x64 upload or a Model II lens) cannot read it as trained: the page says so and
    offers to resample the image up to the crop (stated as a resampling). Returns the lens, its resampled copy
    when the reader asked for one, or None (the page then waits)."""
    if lens is None:
        return None
    h, w = lens.image.shape
    needs = [(m.crop, m.label) for m in models if m is not None and m.crop is not None and m.crop > min(h, w)]
    if not needs:
        return lens
    crop, label = max(needs)
    st.warning(f"This image is {h}x{w} px, smaller than the {crop}x{crop} native pixels that "
               f"{markup.text(label)} takes (its card's crop): the model cannot read it as it was trained.")
    if not st.checkbox(f"Resample the image to {crop}x{crop} px (bilinear interpolation: its pixels are then not "
                       f"the instrument's, and it keeps no truth overlay)", key=f"{prefix}_fit_crop"):
        return None
    return lenses.resized(lens, crop)


def image_size_note(loaded: catalog.LoadedModel, lens: lenses.LensImage) -> None:
    """One line on how the image becomes the model's input: the card's native crop, then any resizing."""
    h, w = lens.image.shape
    size = loaded.image_size
    if loaded.crop is not None:
        resized = f", resized to {size}x{size}" if size != loaded.crop else ""
        st.caption(f"the central {loaded.crop}x{loaded.crop} native pixels of the {h}x{w} image{resized}: "
                   f"the model's input (its card's crop)")
    elif (h, w) != (size, size):
        st.caption(f"image {h}x{w} resized to the model's {size}x{size}")


def export_buttons(key: str, picture, numbers: dict, name: str | None = None) -> None:
    """Two download buttons under a composed figure: the PNG as shown and the numbers behind it
    (JSON: arrays as nested lists). Plotly figures export themselves (the mode bar's camera)."""
    import json

    import numpy as np

    def plain(value):
        if isinstance(value, np.ndarray):
            return np.round(value.astype(np.float64), 8).tolist()
        if isinstance(value, (np.floating, np.integer)):
            return value.item()
        return str(value)

    buffer = io.BytesIO()
    picture.save(buffer, "PNG")
    base = name or key
    c1, c2, _ = st.columns([1, 1, 3])
    c1.download_button("figure (PNG)", buffer.getvalue(), file_name=f"{base}.png", mime="image/png",
                       on_click="ignore", key=f"{key}_png")
    c2.download_button("numbers (JSON)", json.dumps(numbers, default=plain), file_name=f"{base}.json",
                       mime="application/json", on_click="ignore", key=f"{key}_json")


__all__ = ["export_buttons", "fit_to_crop", "image_size_note", "lens_selector", "model_selector", "settings"]
