"""Regression data: lenses of one class paired with a physical number the simulator or the file recorded.

Two targets (:data:`TARGETS`), each defined on the lenses whose substructure carries it:

- ``axion_mass``: ``log10(m_a / eV)`` of axion (vortex) lenses. Simulated: the ``log10_axion_mass``
  of :class:`eqlens.simulation.LensTruth`; DeepLense folders: the mass stored in each axion file's
  ``[image, mass]`` pair (class folder ``axion``), read as eV.
- ``subhalo_mass``: ``log10(M_sub / Msun)`` in recipe units (physical Msun: add the log10 of
  :func:`eqlens.simulation.cosmology.physical_mass_factor`, -0.227 dex for Model I), the summed
  mass of all CDM subhalos of a lens (the
  ``subhalo_masses`` of the truth). The total rather than its fraction of the main halo: it is what
  the simulator records, and with a fixed main halo (``model_i``: 1e12 Msun) the fraction is the same
  target shifted, ``log10 f_sub = log10 M_sub - 12``. DeepLense files store no subhalo masses, so
  this target exists for simulated data only.

Both numbers are properties of the lens, not of its orientation: rotating or mirroring an image
leaves its target unchanged, which is why the invariant models suit them.

:class:`SimulatedRegressionDataset` item ``i`` is simulator image ``i * K + c`` (``K`` classes, ``c``
the target's class), the same scene as item ``i * K + c`` of
:class:`eqlens.data.simulated.SimulatedLensDataset` and as file ``<class>_sim_<i>.npy`` of
:func:`eqlens.simulation.write_deeplense_folder` with the same simulator seed.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.data import Dataset

from ..errors import DataError
from ..simulation import SUBSTRUCTURE, LensTruth, SimulationConfig, get_config
from .deeplense import DeepLenseFolderDataset
from .images import decode_image
from .simulated import SimulatedLensDataset

CLASSIFICATION = "classification"  # the task that is not a regression


def is_regression(task: str) -> bool:
    """True for a regression task (a target of :data:`TARGETS`), False for classification."""
    return task != CLASSIFICATION


def _log10_axion_mass(truth: LensTruth) -> torch.Tensor:
    return truth.log10_axion_mass.double()


def _log10_total_subhalo_mass(truth: LensTruth) -> torch.Tensor:
    return truth.subhalo_masses.double().sum(dim=1).log10()


@dataclass(frozen=True)
class RegressionTarget:
    """One physical number per lens. ``substructure``: the kind of lens that has it (a value of
    :data:`eqlens.simulation.SUBSTRUCTURE`); ``folder_class``: the DeepLense class folder whose files
    store it (None: not stored in files); ``from_truth``: ``LensTruth`` of ``B`` lenses -> ``[B]`` float64."""

    task: str
    name: str
    unit: str
    substructure: str
    folder_class: str | None
    from_truth: Callable[[LensTruth], torch.Tensor]

    def from_file_mass(self, mass: float | None, name: str) -> float:
        """The target of a file whose pair stores ``mass`` (eV)."""
        if mass is None or not math.isfinite(mass) or mass <= 0:
            raise DataError(f"{name}: no positive {self.task.replace('_', ' ')} stored in the file (got {mass!r}); "
                            f"regression needs [image, mass] pairs")
        return math.log10(mass)


TARGETS: dict[str, RegressionTarget] = {
    "axion_mass": RegressionTarget("axion_mass", "log10_axion_mass", "log10(m_a / eV)", "vortex", "axion",
                                   _log10_axion_mass),
    "subhalo_mass": RegressionTarget("subhalo_mass", "log10_subhalo_mass", "log10(M_sub / Msun, recipe units)",
                                     "subhalos", None, _log10_total_subhalo_mass),
}


def get_target(target: str | RegressionTarget) -> RegressionTarget:
    """The named target (a target passes through); unknown names raise ``ValueError``."""
    if isinstance(target, RegressionTarget):
        return target
    try:
        return TARGETS[target]
    except KeyError:
        raise ValueError(f"unknown regression target {target!r}; use one of {', '.join(TARGETS)}") from None


def target_class(config: SimulationConfig, target: RegressionTarget) -> int:
    """Label of the class of ``config`` whose lenses carry ``target``; DataError if there is none."""
    for label, name in enumerate(config.class_names):
        if SUBSTRUCTURE[name] == target.substructure:
            return label
    raise DataError(f"simulation config {config.name!r} (classes {list(config.class_names)}) has no lenses with "
                    f"{target.substructure}: it cannot give {target.task} targets")


class SimulatedRegressionDataset(Dataset):
    """``size`` simulated lenses of the target's class: item i -> ``(image [1, S, S] float32, target float64)``.

    Images are those of :class:`SimulatedLensDataset` (same split streams, normalisation, resizing);
    item i is its image ``i * K + c`` (see the module notes). :meth:`batch` renders many on the
    dataset's device; :meth:`regression_targets` draws only the scene parameters (no rendering)."""

    def __init__(self, target: str | RegressionTarget = "axion_mass", config: str | SimulationConfig = "model_i",
                 split: str = "train", size: int = 1000, seed: int = 0, image_size: int | None = None, device="cpu",
                 dtype=torch.float32, crop: int | None = None):
        if size < 0:
            raise ValueError(f"size must be >= 0, got {size}")
        self.target = get_target(target)
        self.config = get_config(config)
        self.label = target_class(self.config, self.target)
        self.size = int(size)
        self.images = SimulatedLensDataset(self.config, split=split, size=self.size * self.config.num_classes,
                                           seed=seed, image_size=image_size, device=device, dtype=dtype,
                                           crop=crop)

    @property
    def class_names(self) -> tuple[str, ...]:
        """The one output's name (a regression model has one output, named like a class)."""
        return (self.target.name,)

    @property
    def image_size(self) -> int:
        return self.images.image_size

    @property
    def split(self) -> str:
        return self.images.split

    @property
    def seed(self) -> int:
        return self.images.seed

    def __len__(self) -> int:
        return self.size

    def simulator_indices(self, indices) -> torch.Tensor:
        """Simulator image indices ``[N]`` of items ``indices``."""
        idx = torch.as_tensor(indices, dtype=torch.int64).reshape(-1)
        if idx.numel() and (int(idx.min()) < 0 or int(idx.max()) >= self.size):
            raise IndexError(f"index out of range for a data set of {self.size} images")
        return idx * self.config.num_classes + self.label

    def regression_targets(self, indices: Sequence[int] | None = None) -> np.ndarray:
        """Targets ``[N]`` (float64) of items ``indices`` (default: all), from the sampled scenes only."""
        idx = self.simulator_indices(range(self.size) if indices is None else indices)
        if idx.numel() == 0:
            return np.zeros(0)
        sim = self.images.simulator
        params = sim.sample(self.images.simulator_seed, idx.to(sim.device))
        return self.target.from_truth(LensTruth.from_parameters(params, self.config)).cpu().numpy()

    def batch(self, indices) -> tuple[torch.Tensor, torch.Tensor]:
        """``(x [B, 1, S, S] float32, y [B] float64)`` rendered together on the dataset's device."""
        idx = self.simulator_indices(indices)
        x, _ = self.images.batch(idx)
        y = torch.from_numpy(self.regression_targets(indices)).to(x.device)
        return x, y

    def turned_batch(self, indices, angles_deg: float | torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """:meth:`batch` with every scene turned by ``angles_deg`` before rendering
        (:meth:`SimulatedLensDataset.turned_batch`); the targets (masses) do not change with a turn."""
        x, _ = self.images.turned_batch(self.simulator_indices(indices), angles_deg)
        y = torch.from_numpy(self.regression_targets(indices)).to(x.device)
        return x, y

    def __getitem__(self, index: int) -> tuple[torch.Tensor, float]:
        if index < 0:
            index += self.size
        x, y = self.batch([index])
        return x[0], float(y[0])

    def truth(self, index: int) -> dict:
        """The full ground truth of item ``index`` (``LensTruth.for_image``)."""
        return self.images.truth(int(self.simulator_indices([index])[0]))

    def item_source(self, index: int) -> dict:
        """Where item ``index`` comes from: ``{"config", "split", "seed", "index"}`` with the simulator index."""
        return {"config": self.config.name, "split": self.split, "seed": self.seed,
                "index": int(self.simulator_indices([index])[0])}


class FolderRegressionDataset(Dataset):
    """The target's class folder of a DeepLense folder: item i -> ``(image [1, S, S] float32, target float)``.

    Images are read by :class:`DeepLenseFolderDataset` (same layouts, splits, normalisation); the
    targets are read from every file once, when the dataset is built, so a bad file fails early."""

    def __init__(self, root: str | os.PathLike, target: str | RegressionTarget = "axion_mass",
                 image_size: int | None = None, *, split: str | None = None, crop: int | None = None):
        self.target = get_target(target)
        if self.target.folder_class is None:
            raise DataError(f"DeepLense files store no {self.target.task.replace('_', ' ')}: "
                            f"train {self.target.task} on simulated data (--data model_i)")
        self.images = DeepLenseFolderDataset(root, image_size, classes=(self.target.folder_class,), split=split,
                                             crop=crop)
        self._targets = np.array([self.target.from_file_mass(decode_image(path).axion_mass, str(path))
                                  for path in self.images.files], dtype=np.float64)

    @property
    def class_names(self) -> tuple[str, ...]:
        return (self.target.name,)

    @property
    def labels(self) -> list[int]:
        """One class: every item is 0 (so class-stratified splitting is a plain seeded split)."""
        return [0] * len(self)

    def __len__(self) -> int:
        return len(self.images)

    def regression_targets(self, indices: Sequence[int] | None = None) -> np.ndarray:
        return self._targets.copy() if indices is None else self._targets[np.asarray(indices, dtype=np.int64)]

    def __getitem__(self, index: int) -> tuple[torch.Tensor, float]:
        return self.images[index][0], float(self._targets[index])

    def file_path(self, index: int):
        return self.images.file_path(index)
