"""Everything a training run builds before its first step: the data splits (checked), the target
scaler, the model (checked with one trial forward pass), its initial weights and the optimizer.

Nothing here draws from the global random generators except :func:`seed_everything`, which the
trainer calls under :data:`GLOBAL_RNG_LOCK` right before the model is built, so the seed alone
decides the initial weights.
"""

from __future__ import annotations

import random
import threading
from collections.abc import Mapping

import numpy as np
import torch

from ..checkpoint import transfer
from ..core.run_config import MAX_SPLIT_BYTES, TrainConfig
from ..core.tasks import TargetScaler, is_regression
from ..data.augment import SCENE_MODES
from ..data.splits import (
    DataSplits,
    can_turn_scenes,
    dataset_targets,
    is_folder_spec,
    native_image_size,
    resolve_data,
)
from ..errors import DataError, TrainingError
from ..simulation import SimulationConfig

# torch's default generator (model initialisation) and numpy's and Python's global ones are shared by every
# thread of a process: a run seeds them and builds its model under this lock, so concurrent runs (the app's
# jobs) never draw from each other's streams. Code that reseeds or restores them in a shared process takes it.
GLOBAL_RNG_LOCK = threading.RLock()


def seed_everything(seed: int) -> None:
    torch.manual_seed(seed)
    np.random.seed(seed % 2**32)
    random.seed(seed)


def choose_image_size(requested: int | None, native: int, model_spec) -> int:
    """``requested`` if given; else the data's size, minus one when the model needs odd sizes to be
    exactly invariant (stride-2 grids on even sizes are not symmetric under rot90)."""
    if requested is not None:
        return int(requested)
    if model_spec.odd_size_for_exactness and native % 2 == 0:
        return native - 1
    return native


def resolve_splits(config: TrainConfig, device: torch.device, data: DataSplits | None,
                   simulation: SimulationConfig | None = None) -> DataSplits:
    """The run's splits: ``data`` as given (checked against the config), else built from ``config.data``,
    rendered with ``simulation`` when given (a resumed run's recorded config, which the name ``config.data``
    may no longer mean). Raises :class:`DataError` for unusable data, :class:`TrainingError` for settings
    that do not fit it."""
    from .. import models

    try:
        model_spec = models.spec(config.model)
    except ValueError as err:
        raise TrainingError(str(err)) from None
    c = config
    if data is None:
        source = c.data if simulation is None else simulation
        native = native_image_size(source)
        if c.crop is not None and c.crop > native:
            raise TrainingError(f"crop {c.crop} is larger than the {native} px images of {c.data!r}")
        size = choose_image_size(c.image_size, c.crop or native, model_spec)
        check_split_memory(c, size, native, simulated=not is_folder_spec(source))
        data = resolve_data(source, size, train_size=c.train_size, val_size=c.val_size, test_size=c.test_size,
                            val_fraction=c.val_fraction, test_fraction=c.test_fraction, data_seed=c.data_seed,
                            device=device, task=c.task, crop=c.crop, fresh_data=c.fresh_data)
    else:
        if c.image_size is not None and int(c.image_size) != data.image_size:
            raise TrainingError(f"image_size {c.image_size} requested, the given data is {data.image_size}")
        if c.fresh_data or c.crop is not None:
            raise TrainingError("fresh_data and crop describe how the trainer builds its data; "
                                "ready splits were given")
    if len(data.train) == 0:
        raise DataError("the training split is empty")
    if c.augment and c.augment_mode in SCENE_MODES and not can_turn_scenes(data.train):
        raise TrainingError(f"augment_mode {c.augment_mode!r} renders turned scenes, which only simulated training "
                            "data can do; use augment_mode 'image' for files")
    if data.val is None or len(data.val) == 0:
        raise DataError("the validation split is empty: the best epoch cannot be selected")
    if not is_regression(c.task) and len(data.class_names) < 2:
        raise DataError(f"need at least two classes, found {data.class_names}")
    return data


def check_split_memory(config: TrainConfig, image_size: int, native: int, simulated: bool = True) -> int:
    """Bytes the simulated splits take once rendered (float32, at the larger of the native and the model size;
    a fresh-data training split is a stream, not held); :class:`TrainingError` over
    :data:`eqlens.core.run_config.MAX_SPLIT_BYTES`, before anything is rendered. A folder is not counted here:
    its files are read one by one."""
    if not simulated:
        return 0
    images = (0 if config.fresh_data else config.train_size) + config.val_size + config.test_size
    needed = images * max(image_size, native) ** 2 * 4
    if needed > MAX_SPLIT_BYTES:
        raise TrainingError(f"train_size + val_size + test_size = {images:,} simulated images of {image_size} px would "
                            f"take {needed / 2**30:.1f} GiB, over the {MAX_SPLIT_BYTES / 2**30:g} GiB eqlens renders "
                            f"into memory; use fewer images (or fresh_data with steps_per_epoch)")
    return needed


def fit_scaler(task: str, splits: DataSplits) -> TargetScaler | None:
    """Regression: the training split's target mean and std (the same on every rank and on resume:
    the split is fixed by the data settings); None for classification."""
    if not is_regression(task):
        return None
    return TargetScaler.fit(dataset_targets(splits.train))


def build_model(config: TrainConfig, image_size: int, num_outputs: int, device: torch.device) -> torch.nn.Module:
    """The registered model on ``device``, after one forward pass of a blank ``image_size`` image
    (a model that cannot take that size fails here, with its reason, not at the first step)."""
    from .. import models

    try:
        model = models.create(config.model, num_classes=num_outputs, group=config.group, image_size=image_size,
                              **config.model_kwargs)
    except (ValueError, TypeError) as err:
        raise TrainingError(str(err)) from None
    model.to(device)
    try:
        with torch.no_grad(), model.eval_mode():
            model(torch.zeros(1, 1, image_size, image_size, device=device))
    except RuntimeError as err:
        raise TrainingError(f"model {config.model!r} cannot take {image_size}x{image_size} images: "
                            f"{str(err).splitlines()[0]}") from None
    return model


def initial_weights(config: TrainConfig, init_state: Mapping[str, torch.Tensor] | None) -> tuple[Mapping, str] | None:
    """``(tensors, name for messages)`` that start the model, None for a fresh initialisation."""
    if config.init_from is not None:
        return transfer.read_init_checkpoint(config.init_from, config.model, config.group)[0], config.init_from
    if init_state is not None:
        return init_state, "in-memory state"
    return None


def make_optimizer(model: torch.nn.Module, config: TrainConfig):
    """``(optimizer, scheduler)``: Adam with the config's settings; a constant or cosine schedule
    stepped once per epoch."""
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr, betas=config.betas,
                                 weight_decay=config.weight_decay)
    if config.schedule == "cosine":
        scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=config.epochs)
    else:
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda epoch: 1.0)
    return optimizer, scheduler
