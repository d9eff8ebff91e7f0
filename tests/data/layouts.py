"""Writers for every DeepLense layout, with tiny images, so tests can read them back exactly."""

from __future__ import annotations

from pathlib import Path

import numpy as np

SIZE = 20


def counts(seed: int, size: int = SIZE) -> np.ndarray:
    """An ``(H, W)`` integer photon-count image, distinct per seed."""
    return np.random.default_rng(seed).poisson(50.0, size=(size, size)).astype(np.int64) + seed


def axion_pair(image: np.ndarray, mass: float) -> np.ndarray:
    """The DeepLense axion file content: a 1-D object array ``[image, axion_mass]``."""
    pair = np.empty(2, dtype=object)
    pair[0], pair[1] = image, mass
    return pair


def save(path: Path, array: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    np.save(path, array, allow_pickle=array.dtype.hasobject)
    return path


def write_model_i(root: Path, per_class: int = 2, size: int = SIZE) -> dict[Path, tuple[np.ndarray, float | None]]:
    """``root/{no_sub,cdm,axion}/<class>_sim_<k>.npy`` (created in reverse of the canonical order);
    returns file -> (image, axion mass or None)."""
    written = {}
    for c, name in enumerate(("no_sub", "cdm", "axion")):
        for k in range(per_class):
            image = counts(100 * c + k, size)
            mass = 10.0 ** (-24 + k * 0.5) if name == "axion" else None
            content = axion_pair(image, mass) if mass is not None else image
            written[save(root / name / f"{name}_sim_{k}.npy", content)] = (image, mass)
    return written


def write_common_test(root: Path, splits=("train", "val"), per_class: int = 2) -> dict[Path, np.ndarray]:
    """``root/<split>/{no,sphere,vort}/*.npy`` holding ``(1, H, W)`` min-max normalised float images."""
    written = {}
    for s, split in enumerate(splits):
        for c, name in enumerate(("vort", "sphere", "no")):
            for k in range(per_class):
                raw = counts(1000 * s + 100 * c + k).astype(np.float64)
                image = ((raw - raw.min()) / (raw.max() - raw.min()))[None].astype(np.float32)
                written[save(root / split / name / f"{name}_{k}.npy", image)] = image[0]
    return written


def write_flat_labeled(root: Path, labels=(2, 0, 1, 0), side: int = SIZE) -> dict[Path, tuple[np.ndarray, int]]:
    """Loose ``root/lens_<k>.npy``, each ``(side*side + 1,)``: a row-major flat image then its label."""
    written = {}
    for k, label in enumerate(labels):
        image = counts(k, side).astype(np.float64)
        flat = np.concatenate([image.ravel(), [float(label)]])
        written[save(root / f"lens_{k}.npy", flat)] = (image, label)
    return written
