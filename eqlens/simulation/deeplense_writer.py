"""Write simulated images in the DeepLense folder layout.

    out_dir/<class>/<class>_sim_<n>.npy     n = 0 .. n_per_class - 1, one folder per config class

Non-axion files hold the ``(H, W)`` count image (float64, as DeepLenseSim saves); axion files hold
``np.array([image, axion_mass_eV], dtype=object)``, the layout of the DeepLense Model I files (load
with ``allow_pickle=True`` and take ``[0]``). Image n of class c is image index ``n * C + c`` of
the simulator with seed ``seed``, so the files are reproducible and each class gets distinct scenes.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

from ..errors import DataError
from .configs import SimulationConfig, get_config
from .simulator import LensSimulator


def _writable_folder(path: Path) -> None:
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise DataError(f"cannot create output folder {str(path)!r}: {err.strerror or err}") from None
    if not os.access(path, os.W_OK):
        raise DataError(f"output folder {str(path)!r} is not writable")


def write_deeplense_folder(
    config: SimulationConfig | str,
    out_dir,
    n_per_class: int,
    seed: int = 0,
    device="cpu",
    progress: bool = True,
    batch_size: int = 16,
    dtype=torch.float32,
) -> dict[str, int]:
    """Simulate ``n_per_class`` images of every class into ``out_dir``; returns ``{class: files written}``.

    Raises :class:`eqlens.errors.DataError` if the folder cannot be created or written, and
    ``SimulationConfigError`` for an unknown config name."""
    config = get_config(config)
    if n_per_class < 0 or batch_size < 1:
        raise ValueError("n_per_class must be >= 0 and batch_size >= 1")
    out = Path(out_dir)
    classes = config.class_names
    for name in classes:
        _writable_folder(out / name)
    sim = LensSimulator(config, device=device, dtype=dtype)
    c = len(classes)
    total = n_per_class * c
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=total, desc=f"simulate {config.name}", unit="img")
    written = dict.fromkeys(classes, 0)
    try:
        for start in range(0, total, batch_size):
            indices = torch.arange(start, min(start + batch_size, total), dtype=torch.int64)
            batch = sim.simulate(seed, indices)
            images = batch.images.detach().to("cpu", torch.float64).numpy()
            axion_mass = (10.0 ** batch.truth.log10_axion_mass.detach().to("cpu", torch.float64)).numpy()
            for row, index in enumerate(indices.tolist()):
                name = classes[index % c]
                path = out / name / f"{name}_sim_{index // c}.npy"
                if name == "axion":
                    record = np.empty(2, dtype=object)
                    record[0], record[1] = images[row], float(axion_mass[row])
                else:
                    record = images[row]
                try:
                    np.save(path, record, allow_pickle=name == "axion")
                except OSError as err:
                    raise DataError(f"cannot write {str(path)!r}: {err.strerror or err}") from None
                written[name] += 1
            if bar is not None:
                bar.update(len(indices))
    finally:
        if bar is not None:
            bar.close()
    return written
