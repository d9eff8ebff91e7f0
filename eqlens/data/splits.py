"""Turn a data spec into train / validation / test datasets, and datasets into batches on a device.

A spec is a simulation config name (``"model_i"``, ``"model_ii"``, ``"binary"``: three
:class:`eqlens.data.simulated.SimulatedLensDataset` splits from disjoint seed streams) or a
DeepLense folder (read by :class:`eqlens.data.deeplense.DeepLenseFolderDataset`), in one of three forms:

- a split root (``dataset/{train,val}``, ``{Model_I, Model_I_test}``): its train, val and test
  splits; a missing val or test split is carved out of train;
- a data root ``ROOT`` with a sibling ``ROOT_test`` (``Model_I`` beside ``Model_I_test``): test is
  ``ROOT_test``, validation is carved out of ``ROOT``;
- a data root alone: validation and test are both carved out of it.

A simulated spec may also be a :class:`eqlens.simulation.SimulationConfig` itself. A simulated run's
description records the config it rendered with, every setting (``simulation_config``), beside its
name (``spec``); :func:`recorded_simulation_config` is the one reader of that record, and resolves a
record without it to the closed-form line vortex (``model_i_line``), the form such records were rendered with.

Carving is stratified by class and fixed by ``data_seed``. The test split never takes part in
model selection. Every dataset yields ``(image [1, S, S] normalised, label)``; a dataset with a
``batch(indices)`` method (the simulator) renders whole batches on the training device instead of
going through a DataLoader.

A regression ``task`` (``"axion_mass"``, ``"subhalo_mass"``) gives the same splits restricted to
the lenses that carry the target, yielding ``(image, physical target)``
(:mod:`eqlens.data.regression`): the simulator's lenses of that class, or a folder's ``axion``
class folder with the masses its files store.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Subset

from ..errors import DataError
from ..simulation import SimulationConfig
from .regression import CLASSIFICATION, is_regression

SPLITS = ("train", "val", "test")
# Until 2026-12-02 every simulated run drew the axion vortex as the closed-form uniform line (the simulator's
# default then) and recorded only its config's name: a record without ``simulation_config`` was made with it.
LEGACY_VORTEX_MODEL = "line"


@dataclass
class DataSplits:
    """The three splits of a run, their class names, the image size they yield, and a JSON-able
    description that goes into the checkpoint (spec, kind, seeds, sizes)."""

    train: Dataset
    val: Dataset
    test: Dataset | None
    class_names: list[str]
    image_size: int
    description: dict = field(default_factory=dict)

    @classmethod
    def from_datasets(cls, train, val, test=None, class_names=None, description=None) -> DataSplits:
        """Wrap ready datasets (e.g. in-memory ones); the image size is read off the first image."""
        if len(train) == 0:
            raise DataError("the training dataset is empty")
        names = list(class_names if class_names is not None else train.class_names)
        size = int(train[0][0].shape[-1])
        sizes = {s: len(d) for s, d in zip(SPLITS, (train, val, test), strict=True) if d is not None}
        desc = {"kind": "custom", "sizes": sizes}
        return cls(train, val, test, names, size, {**desc, **(description or {})})


def is_folder_spec(spec: str | SimulationConfig) -> bool:
    return isinstance(spec, str) and (os.path.sep in spec or Path(spec).exists())


def simulation_config(spec: str | SimulationConfig) -> SimulationConfig:
    """The simulation config ``spec`` names (today's config of that name; a config passes through)."""
    from ..simulation import get_config

    try:
        return get_config(spec)
    except (KeyError, ValueError) as err:
        raise DataError(
            f"unknown data {spec!r}: neither an existing folder nor a simulation config ({err})"
        ) from None


def recorded_simulation_config(spec: str, record: Mapping | None = None) -> SimulationConfig:
    """The simulation config a run's data was rendered with, from what the run recorded: ``record`` (the
    config's every setting, :meth:`SimulationConfig.to_dict`) when it has one; else, for a record written
    before configs were recorded, the config named ``spec`` as the simulator drew it then, the vortex as the
    closed-form line (:data:`LEGACY_VORTEX_MODEL`), under the name that renders it today when there is one
    (``model_i`` -> ``model_i_line``). The one owner of that rule: cards, resume states,
    evaluation and the app all resolve a run's data here. Raises :class:`DataError` for an unusable record."""
    from ..simulation import SUBSTRUCTURE, SimulationConfigError, get_config, registered_name

    if record is not None:
        if not isinstance(record, Mapping):
            raise DataError(f"the data's simulation_config must be a mapping, got {type(record).__name__}")
        try:
            return SimulationConfig.from_dict(dict(record))
        except (SimulationConfigError, TypeError, ValueError) as err:
            raise DataError(f"the data's simulation_config is not one this eqlens reads: {err}") from None
    config = simulation_config(spec)
    if not any(SUBSTRUCTURE[name] == "vortex" for name in config.class_names):
        return config  # no vortex drawn: the form never mattered
    drawn = dataclasses.replace(config, vortex_model=LEGACY_VORTEX_MODEL)
    name = registered_name(drawn)  # by the name that renders it today (model_i -> model_i_line), if any
    return get_config(name) if name is not None else drawn


def data_simulation_config(data: Mapping) -> SimulationConfig | None:
    """The simulation config a card's ``data`` record was rendered with (:func:`recorded_simulation_config`),
    None for data that is not simulated (a folder, in-memory datasets without a recorded config)."""
    if data.get("simulation_config") is not None:
        return recorded_simulation_config(data.get("spec"), data["simulation_config"])
    kind, spec = data.get("kind"), data.get("spec")
    if kind == "simulated":
        return recorded_simulation_config(spec)
    if kind is not None or not isinstance(spec, str) or is_folder_spec(spec):
        return None
    try:  # a record without its kind: simulated when it names a simulation config
        return recorded_simulation_config(spec)
    except DataError:
        return None


def data_spec_now(data: Mapping) -> str | None:
    """The spec that renders a card's ``data`` record's images: for simulated data the registered config
    that renders them (``model_i_line`` for a ``model_i`` card without ``simulation_config``, whose vortex is the
    line), else the recorded ``spec`` (a folder; a config no registered name renders)."""
    from ..simulation import registered_name

    spec = data.get("spec")
    try:
        config = data_simulation_config(data)
    except DataError:
        return spec
    name = registered_name(config) if config is not None else None
    return name or spec


def _simulated_dataset(spec: str | SimulationConfig, split: str, size: int, seed: int, image_size: int | None,
                       device, task: str = CLASSIFICATION, crop: int | None = None):
    from .regression import SimulatedRegressionDataset
    from .simulated import SimulatedLensDataset

    config = simulation_config(spec)
    if is_regression(task):
        return SimulatedRegressionDataset(task, config, split=split, size=int(size), seed=int(seed),
                                          image_size=image_size, device=device, crop=crop)
    return SimulatedLensDataset(config, split=split, size=int(size), seed=int(seed), image_size=image_size,
                                device=device, crop=crop)


def _folder_dataset(root: Path, image_size: int | None, classes=None, split: str | None = None,
                    task: str = CLASSIFICATION, crop: int | None = None):
    """A classification folder dataset (classes in ``classes`` order), or the regression dataset of
    ``task`` (its one class folder; ``classes`` must then be None or its one output name)."""
    from .deeplense import DeepLenseFolderDataset
    from .regression import FolderRegressionDataset

    if is_regression(task):
        return FolderRegressionDataset(root, task, image_size, split=split, crop=crop)
    return DeepLenseFolderDataset(root, image_size=image_size, classes=classes, split=split, crop=crop)


def _split_roots(root: Path) -> bool:
    """Whether ``root`` holds split folders (``train/val/test``, ``Model_I + Model_I_test``)."""
    from .deeplense import list_splits

    return bool(list_splits(root))


def _optional_split(root: Path, split: str, image_size: int, classes, task: str,
                    crop: int | None = None) -> Dataset | None:
    """Split ``split`` of a split root, None when the root has no such split."""
    try:
        return _folder_dataset(root, image_size, None if is_regression(task) else classes, split, task, crop)
    except DataError as err:
        if "no split" in str(err):
            return None
        raise


def native_image_size(spec: str | SimulationConfig) -> int:
    """Side length of the images a spec holds before any resizing."""
    if is_folder_spec(spec):
        root = Path(spec)
        first = _folder_dataset(root, None, split="train" if _split_roots(root) else None)
        if len(first) == 0:
            raise DataError(f"data folder {spec!r} holds no images")
        return int(first[0][0].shape[-1])
    return int(_simulated_dataset(spec, "train", 1, 0, None, "cpu").image_size)


def stratified_split(labels, fractions: Iterable[float], seed: int) -> list[np.ndarray]:
    """Split the positions of ``labels [N]`` into ``len(fractions) + 1`` sorted index arrays: part
    ``i`` takes ``round(fractions[i] * n_c)`` of each class ``c`` (at least one when the fraction is
    positive and the class has more than one image), the last part keeps the rest."""
    labels = np.asarray(labels)
    fractions = list(fractions)
    rng = np.random.default_rng(seed)
    parts: list[list[int]] = [[] for _ in range(len(fractions) + 1)]
    for c in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == c))
        start = 0
        for i, frac in enumerate(fractions):
            take = int(round(frac * len(members)))
            if frac > 0 and take == 0 and len(members) - start > 1:
                take = 1
            parts[i].extend(members[start : start + take].tolist())
            start += take
        parts[-1].extend(members[start:].tolist())
    return [np.sort(np.asarray(p, dtype=np.int64)) for p in parts]


def _folder_splits(root: Path, image_size: int, val_fraction: float, test_fraction: float,
                   data_seed: int, task: str = CLASSIFICATION, crop: int | None = None) -> DataSplits:
    if not root.is_dir():
        raise DataError(f"data folder {str(root)!r} does not exist")
    if _split_roots(root):
        train_full = _folder_dataset(root, image_size, split="train", task=task, crop=crop)
        names = list(train_full.class_names)
        val = _optional_split(root, "val", image_size, names, task, crop)
        test = _optional_split(root, "test", image_size, names, task, crop)
        layout = "split folders"
    else:
        train_full = _folder_dataset(root, image_size, task=task, crop=crop)
        names = list(train_full.class_names)
        sibling = root.parent / f"{root.name}_test"
        classes = None if is_regression(task) else names
        test = _folder_dataset(sibling, image_size, classes, task=task, crop=crop) if sibling.is_dir() else None
        val = None
        layout = "ROOT + ROOT_test" if test is not None else "one folder"
    carve = [val_fraction if val is None else 0.0, test_fraction if test is None else 0.0]
    val_idx, test_idx, train_idx = stratified_split(train_full.labels, carve, data_seed)
    train = Subset(train_full, train_idx.tolist())
    val = val if val is not None else Subset(train_full, val_idx.tolist())
    test = test if test is not None else Subset(train_full, test_idx.tolist())
    for split, ds in zip(SPLITS, (train, val, test), strict=True):
        if len(ds) == 0:
            raise DataError(f"the {split} split of {str(root)!r} is empty; add images or change the fractions")
    description = {
        "kind": "folder", "spec": str(root), "layout": layout, "data_seed": int(data_seed),
        "val_fraction": val_fraction, "test_fraction": test_fraction,
        "sizes": {s: len(d) for s, d in zip(SPLITS, (train, val, test), strict=True)},
    }
    return DataSplits(train, val, test, names, image_size, _with_task(description, task))


def _with_task(description: dict, task: str) -> dict:
    """A regression run's data description names its task (a classification one stays as it was)."""
    return {**description, "task": task} if is_regression(task) else description


def resolve_data(spec: str | SimulationConfig, image_size: int, *, train_size: int, val_size: int, test_size: int,
                 val_fraction: float = 0.1, test_fraction: float = 0.1, data_seed: int = 0,
                 device="cpu", task: str = CLASSIFICATION, crop: int | None = None,
                 fresh_data: bool = False) -> DataSplits:
    """The train/val/test datasets of ``spec`` at ``image_size`` for ``task`` (see the module docstring),
    every image cropped to its central ``crop`` native pixels first when ``crop`` is given.

    Simulated splits render on ``device``; a folder is read on the CPU. For a regression task the
    simulated sizes count lenses of the target's class. ``fresh_data`` (simulated only): the training
    split is the whole training stream of ``data_seed`` (:data:`STREAM_SIZE` images, never stored),
    which the trainer walks in order so that no image is seen twice; ``train_size`` is then unused.
    A simulated description records the config rendered (``spec``: its name, ``simulation_config``: every
    setting)."""
    from .simulated import STREAM_SIZE

    if is_folder_spec(spec):
        if fresh_data:
            raise DataError(f"fresh data is drawn from the simulator; {spec!r} is a folder of fixed images")
        return _folder_splits(Path(spec), image_size, val_fraction, test_fraction, data_seed, task, crop)
    sizes = {"train": STREAM_SIZE if fresh_data else train_size, "val": val_size, "test": test_size}
    if fresh_data and is_regression(task):
        sizes["train"] = STREAM_SIZE // 16  # a regression item is one lens of its class: K images apart
    made = {s: _simulated_dataset(spec, s, n, data_seed, image_size, device, task, crop) if n > 0 else None
            for s, n in sizes.items()}
    names = list(made["train"].class_names)
    config = made["train"].config
    description = {"kind": "simulated", "spec": config.name, "simulation_config": config.to_dict(),
                   "data_seed": int(data_seed),
                   "sizes": {**sizes, "train": "stream" if fresh_data else train_size}}
    if fresh_data:
        description["fresh_data"] = True
    return DataSplits(made["train"], made["val"], made["test"], names, image_size, _with_task(description, task))


def resolve_eval_dataset(spec: str | SimulationConfig, split: str, image_size: int, class_names: list[str], *,
                         size: int | None = None, data_seed: int = 0, device="cpu",
                         task: str = CLASSIFICATION, crop: int | None = None) -> Dataset:
    """One split of ``spec`` for evaluation, with classes in ``class_names`` order (for a regression
    ``task``: the one output name).

    Simulated data: the ``split`` stream of ``data_seed`` (``size`` images, default 1000). A split
    root: that split; a data root: all of it (to re-create a split carved out of a folder at
    training time, use :func:`resolve_data` with the checkpoint's fractions and seed). Raises
    :class:`DataError` when the classes differ from ``class_names``."""
    if split not in SPLITS:
        raise DataError(f"unknown split {split!r}; use one of {', '.join(SPLITS)}")
    if not is_folder_spec(spec):
        ds = _simulated_dataset(spec, split, size or 1000, data_seed, image_size, device, task, crop)
    else:
        root = Path(spec)
        if not root.is_dir():
            raise DataError(f"data folder {spec!r} does not exist")
        chosen = split if _split_roots(root) else None
        found = list(_folder_dataset(root, image_size, split=chosen, task=task).class_names)
        if sorted(found) != sorted(class_names):
            raise DataError(f"folder {spec!r} has classes {found}, the checkpoint was trained on {list(class_names)}")
        ds = _folder_dataset(root, image_size, None if is_regression(task) else list(class_names), chosen, task,
                             crop)
        if size is not None and size < len(ds):
            # Files are listed class by class: take a random (seeded) subset, not the first classes.
            ds = Subset(ds, np.sort(np.random.default_rng(data_seed).permutation(len(ds))[:size]).tolist())
    if list(base_dataset(ds)[0].class_names) != list(class_names):
        raise DataError(f"data {spec!r} has classes {list(base_dataset(ds)[0].class_names)}, "
                        f"the checkpoint was trained on {list(class_names)}")
    return ds


def base_dataset(ds) -> tuple[Dataset, list[int] | None]:
    """The dataset under any Subset wrappers, and the index map into it (None: identity)."""
    mapping = None
    while isinstance(ds, Subset):
        idx = list(ds.indices)
        mapping = idx if mapping is None else [idx[i] for i in mapping]
        ds = ds.dataset
    return ds, mapping


def describe_item(ds, index: int) -> dict:
    """Where image ``index`` of ``ds`` comes from: ``{"file": path}`` for a folder,
    ``{"config", "split", "seed", "index"}`` for the simulator, ``{"index"}`` otherwise."""
    base, mapping = base_dataset(ds)
    i = int(mapping[index] if mapping is not None else index)
    if hasattr(base, "item_source"):  # a dataset that knows better than its attributes say
        return base.item_source(i)
    if hasattr(base, "file_path"):
        return {"file": str(base.file_path(i))}
    if hasattr(base, "batch"):
        config = getattr(base, "config", None)
        return {"config": getattr(config, "name", str(config)), "split": getattr(base, "split", None),
                "seed": getattr(base, "seed", None), "index": i}
    return {"index": i}


def dataset_labels(ds) -> list[int] | None:
    """Class labels of every item of ``ds`` from its base dataset's ``labels`` (a folder lists them
    without reading an image); None when the dataset keeps no such list (the simulator)."""
    base, mapping = base_dataset(ds)
    labels = getattr(base, "labels", None)
    if labels is None:
        return None
    return [int(labels[i]) for i in (mapping if mapping is not None else range(len(base)))]


def class_balanced_indices(ds, size: int) -> list[int]:
    """``min(size, len(ds))`` item indices of ``ds`` that take the classes in turn, each class in its
    dataset order, so a subset of a folder read class by class still holds every class (the first
    ``size`` files of such a folder are all of its first class). A dataset without a ``labels`` list
    (the simulator, whose items already interleave the classes) gives its first ``size`` items."""
    n = min(int(size), len(ds))
    labels = dataset_labels(ds)
    if labels is None:
        return list(range(n))
    by_class: dict[int, list[int]] = {}
    for i, label in enumerate(labels):
        by_class.setdefault(label, []).append(i)
    queues = [by_class[label] for label in sorted(by_class)]
    chosen: list[int] = []
    for rank in range(max((len(q) for q in queues), default=0)):
        chosen += [q[rank] for q in queues if rank < len(q)]
        if len(chosen) >= n:
            break
    return sorted(chosen[:n])


def dataset_targets(ds) -> np.ndarray:
    """Regression targets ``[N]`` (float64) of every item of ``ds``: from its base dataset's
    ``regression_targets`` when it has one (no images are read or rendered), else item by item."""
    base, mapping = base_dataset(ds)
    if hasattr(base, "regression_targets"):
        return np.asarray(base.regression_targets(mapping), dtype=np.float64)
    return np.array([float(ds[i][1]) for i in range(len(ds))], dtype=np.float64)


def can_turn_scenes(ds) -> bool:
    """Whether ``ds`` (under any Subset) renders its items with turned scenes (``turned_batch``)."""
    return hasattr(base_dataset(ds)[0], "turned_batch")


def iterate_batches(ds, index_batches: Iterable, device, workers: int = 0,
                    turn: Callable[[int], torch.Tensor | None] | None = None
                    ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """``(x [B, 1, S, S], y [B])`` on ``device`` for each index batch of ``ds``.

    A simulator (``batch`` method) renders each batch in one call on its own device; anything else
    goes through a DataLoader with ``workers`` processes. ``turn(B)``: angles ``[B]`` (deg) to
    render each batch's scenes at (``turned_batch``; a simulator only), or None for upright items."""
    device = torch.device(device)
    base, mapping = base_dataset(ds)
    if turn is not None and not hasattr(base, "turned_batch"):
        raise DataError("only simulated data can be rendered with turned scenes; use image augmentation")
    if hasattr(base, "batch"):
        for idx in index_batches:
            idx = [int(i) for i in idx]
            idx = [mapping[i] for i in idx] if mapping is not None else idx
            angles = None if turn is None else turn(len(idx))
            x, y = base.batch(idx) if angles is None else base.turned_batch(idx, angles)
            yield x.to(device, non_blocking=True), torch.as_tensor(y).to(device, non_blocking=True)
        return
    batches = [[int(i) for i in idx] for idx in index_batches]
    loader = DataLoader(ds, batch_sampler=batches, num_workers=workers, pin_memory=device.type == "cuda",
                        persistent_workers=False)
    for x, y in loader:
        yield x.to(device, non_blocking=True), torch.as_tensor(y).to(device, non_blocking=True)
