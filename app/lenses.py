"""Where the lens image comes from: the simulator, a DeepLense folder, or an upload.

A :class:`LensImage` is plain data (numpy, dicts) kept in each session's own state; the heavy
objects behind it (simulator, folder index) are cached per process.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import streamlit as st
import torch

from app import settings
from eqlens.errors import DataError

# The simulations a page offers; a page starts on the one its model's card names (widgets, Misclassified).
SIM_CONFIGS = ("model_i", "model_i_varied", "model_i_line", "model_i_tnfw", "model_i_varied_tnfw", "binary", "model_ii")


@dataclass(frozen=True, eq=False)
class LensImage:
    """``image [H, W]`` (raw counts or values), where it came from, and what is known about it."""

    image: np.ndarray
    source: str
    label: str | None = None
    truth: dict = field(default_factory=dict)
    scene: tuple[str, int, int] | None = None  # (config, class index, seed) of a simulated lens: it can be turned

    @property
    def can_turn_scene(self) -> bool:
        return self.scene is not None

    @property
    def pixel_scale(self) -> float | None:
        """Arcsec per pixel of ``image`` when known (simulated lenses: the simulator's grid), else None."""
        value = self.truth.get("pixel_scale") if self.truth else None
        return float(value) if value else None

    @property
    def digest(self) -> str:
        return hashlib.sha1(np.ascontiguousarray(self.image, dtype=np.float32).tobytes()).hexdigest()[:16]


def prepared(lens: LensImage, image_size: int, crop: int | None = None) -> torch.Tensor:
    """The model input ``[1, 1, S, S]`` through the one transform of eqlens (native crop, resize, min-max)."""
    from eqlens.data import prepare_batch

    return prepare_batch(torch.as_tensor(np.asarray(lens.image, dtype=np.float32))[None], image_size, crop)


def resized(lens: LensImage, size: int) -> LensImage:
    """``lens`` resampled to ``size x size`` by eqlens' own resize (antialiased bilinear): for an image smaller
    than a model's native crop. Its pixels are then no longer the instrument's, so it keeps no truth overlay
    (pixel positions) and no scene to turn."""
    from eqlens.data.transforms import resize_image

    h, w = lens.image.shape
    image = resize_image(torch.as_tensor(np.asarray(lens.image, dtype=np.float32))[None], size)[0]
    return LensImage(image.numpy().astype(np.float32), f"{lens.source}, resampled from {h}x{w} to {size}x{size} px",
                     lens.label)


@st.cache_resource(show_spinner=False, max_entries=3)
def _simulator(config_name: str):
    from eqlens.simulation import LensSimulator, get_config

    config = get_config(config_name)
    return config, LensSimulator(config, device="cpu", dtype=torch.float32)


def class_names(config_name: str) -> tuple[str, ...]:
    return tuple(_simulator(config_name)[0].class_names)


@st.cache_data(show_spinner="Simulating...", max_entries=256)
def _simulate(config_name: str, class_index: int, seed: int, turn_deg: float = 0.0) -> tuple[np.ndarray, dict]:
    _, simulator = _simulator(config_name)
    batch = simulator.simulate(seed, [0], labels=[class_index], turn_deg=float(turn_deg) if turn_deg else None)
    image = batch.images[0].detach().cpu().numpy().astype(np.float32)
    truth = batch.truth.for_image(0) if getattr(batch, "truth", None) is not None else {}
    if truth:
        truth["targets"] = _regression_targets(batch.truth)
    return image, _plain(truth)


def _regression_targets(truth) -> dict[str, float | None]:
    """Every regression target of the one simulated lens, by the core's own definitions
    (None where the lens does not carry it, e.g. an axion mass on a cdm lens)."""
    from eqlens.data.regression import TARGETS

    values = {task: float(target.from_truth(truth)[0]) for task, target in TARGETS.items()}
    return {task: v if math.isfinite(v) else None for task, v in values.items()}


def _plain(value):
    """Truth records as plain Python/numpy data (st.cache_data pickles them; overlays read them)."""
    if torch.is_tensor(value):
        return value.detach().cpu().numpy()
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_plain(v) for v in value)
    return value


def simulate(config_name: str, class_index: int, seed: int) -> LensImage:
    image, truth = _simulate(config_name, int(class_index), int(seed))
    name = class_names(config_name)[class_index]
    return LensImage(image, f"simulated {config_name} / {name} / seed {seed}", name, truth,
                     scene=(config_name, int(class_index), int(seed)))


def turned_scene(lens: LensImage, angle: float) -> LensImage:
    """The simulated ``lens`` with its scene turned by ``angle`` deg and rendered again (raw counts and
    the turned scene's truth): what the telescope would see of the lens at that orientation."""
    config_name, class_index, seed = lens.scene
    image, truth = _simulate(config_name, class_index, seed, round(float(angle), 6) % 360.0)
    return LensImage(image, f"{lens.source}, sky turned {angle:g} deg", lens.label, truth, lens.scene)


def turned_inputs(lens: LensImage, angles, image_size: int, crop: int | None = None) -> torch.Tensor:
    """Model inputs ``[A, 1, S, S]`` (unmasked) of the simulated ``lens`` turned by each angle as a scene."""
    from eqlens.data.simulated import render_turned_lens

    config_name, class_index, seed = lens.scene
    x, _ = render_turned_lens(_simulator(config_name)[1], seed, 0, class_index, list(angles), image_size, crop)
    return x


def sky_turner(lens: LensImage, image_size: int, crop: int | None = None):
    """``turned(angles) -> [A, 1, S, S]``: the model inputs of ``lens`` turned as a scene (see
    :func:`turned_inputs`), for a model taking ``image_size`` px after the native ``crop``."""
    def turned(angles) -> torch.Tensor:
        return turned_inputs(lens, angles, image_size, crop)
    return turned


def allowed_folder(text: str) -> Path:
    """The folder a user typed, resolved (symlinks followed), if it lies inside one of the configured data
    roots (:data:`app.settings.DATA_ROOTS`); a relative path is taken relative to each root in turn.
    Raises DataError otherwise, with the same words whether or not an outside path exists."""
    text = (text or "").strip()
    roots = settings.DATA_ROOTS
    shown = ", ".join(str(root) for root in roots)
    if not text or "\x00" in text:
        raise DataError("type the path of a DeepLense folder inside the data folders")
    typed = Path(text)
    candidates = [typed] if typed.is_absolute() else [root / typed for root in roots]
    inside = False
    for candidate in candidates:
        try:
            resolved = candidate.resolve()
        except (OSError, RuntimeError):  # symlink loops, overlong names
            continue
        if not any(resolved == root or resolved.is_relative_to(root) for root in roots):
            continue
        if resolved.is_dir():
            return resolved
        inside = True
    if inside:
        raise DataError(f"{text}: no such folder inside the data folders ({shown})")
    raise DataError(f"{text}: the app reads folders only inside its data folders ({shown}); "
                    "whoever runs the app can add more with EQLENS_DATA_ROOTS")


def _inside_roots(path: Path) -> bool:
    try:
        resolved = path.resolve()
    except (OSError, RuntimeError):
        return False
    return any(resolved == root or resolved.is_relative_to(root) for root in settings.DATA_ROOTS)


@st.cache_resource(show_spinner="Indexing folder...", max_entries=4)
def _folder(root: str):
    from eqlens.data.deeplense import DeepLenseFolderDataset, scan_limits

    with scan_limits(settings.FOLDER_SCAN_MAX_ENTRIES, settings.FOLDER_SCAN_SECONDS):
        return DeepLenseFolderDataset(root)


def folder_index(root: str):
    """The DeepLense folder dataset at ``root``, which must lie inside the data roots (raises DataError
    with the reason; the scan is bounded in entries and seconds)."""
    return _folder(str(allowed_folder(root)))


def training_folder(root: str) -> str:
    """A Train page folder, checked like :func:`folder_index` (inside the data roots, a bounded scan
    that finds a DeepLense layout); returns the resolved path to hand to the trainer."""
    from eqlens.data.deeplense import detect_layout, scan_limits

    folder = allowed_folder(root)
    with scan_limits(settings.FOLDER_SCAN_MAX_ENTRIES, settings.FOLDER_SCAN_SECONDS):
        detect_layout(folder)
    return str(folder)


def from_folder(root: str, index: int) -> LensImage:
    from eqlens.data.images import load_image

    dataset = folder_index(root)
    path = dataset.file_path(index)
    if not _inside_roots(path):  # a symlink in the folder pointing elsewhere on the server
        raise DataError(f"{path.name}: links outside the data folders; refused")
    image = np.asarray(load_image(path), dtype=np.float32)
    label = _folder_label(dataset, index)
    return LensImage(image, f"{path}", label)


def _folder_label(dataset, index: int) -> str | None:
    labels = getattr(dataset, "labels", None)
    if labels is None:
        return None
    return dataset.class_names[int(labels[index])]


@st.cache_data(show_spinner="Reading the upload...", max_entries=8)
def _decode_upload(data: bytes, filename: str) -> tuple[np.ndarray | None, str | None]:
    """(image, None) or (None, the refusal), so a refused file is not decoded again on every rerun. Only
    an image the app accepts is kept (float32, at most MAX_UPLOAD_PIXELS): a refused one, however large
    its pixels, is cached as its message (a 30 KB PNG of 4096x4096 would otherwise pin 128 MB)."""
    from eqlens.data.sandbox import decode_untrusted

    try:
        decoded = decode_untrusted(data, filename, memory_bytes=settings.DECODE_MEMORY_MB << 20,
                                   timeout_s=settings.DECODE_TIMEOUT_S, max_pixels=settings.MAX_UPLOAD_PIXELS)
        check_image(decoded.image, filename)
    except DataError as err:
        return None, str(err)
    return decoded.image.astype(np.float32), None


def from_upload(data: bytes, filename: str) -> LensImage:
    """An uploaded .npy / PNG / FITS file -> LensImage; DataError for anything the app cannot show.
    The bytes are decoded in a child process with a memory and time limit (eqlens.data.sandbox): a
    file that crashes or exhausts a decoder costs that child, never the server."""
    if len(data) == 0:
        raise DataError(f"{filename} is empty")
    image, refusal = _decode_upload(bytes(data), filename)
    if refusal is not None:
        raise DataError(refusal)
    image = np.asarray(image)
    check_image(image, filename)
    return LensImage(image.astype(np.float32), f"upload {filename}")


def check_image(image: np.ndarray, name: str) -> None:
    """What the app itself needs beyond a readable file: 2-D, finite, square, not huge."""
    if image.ndim != 2:
        raise DataError(f"{name}: expected a single 2-D image, got shape {image.shape}")
    if image.shape[0] < 8 or image.shape[1] < 8:
        raise DataError(f"{name}: {image.shape[0]}x{image.shape[1]} is too small (need at least 8x8)")
    if image.shape[0] * image.shape[1] > settings.MAX_UPLOAD_PIXELS:
        raise DataError(f"{name}: {image.shape[0]}x{image.shape[1]} is too large (at most 2048x2048 pixels)")
    if image.shape[0] != image.shape[1]:
        raise DataError(f"{name}: lens images must be square, got {image.shape[0]}x{image.shape[1]}")
    if not np.isfinite(image).all():
        raise DataError(f"{name}: the image holds NaN or infinite pixels")
