"""Tiny simulated data and checkpoints for the experiment tests: a 33x33 Model I (same lenses, 4.5x
coarser pixels, rendered natively so no 150x150 image is ever made) and 1-epoch models on 12 images."""

from __future__ import annotations

import dataclasses

import pytest

from eqlens.core.run_config import TrainConfig
from eqlens.data.simulated import SimulatedLensDataset
from eqlens.data.splits import DataSplits
from eqlens.experiments.fewshot import old_class_config
from eqlens.simulation import get_config
from eqlens.training import train

SIZE = 33
TINY = dataclasses.replace(get_config("model_i"), name="tiny_model_i", image_size=SIZE, pixel_scale=150 * 0.05 / SIZE)
TINY_KWARGS = {"cnn": {"widths": [4, 8]}, "gcnn": {"widths": [4, 4], "hidden": 8}}


def tiny_splits(config, sizes=(12, 6, 6)) -> DataSplits:
    sets = [SimulatedLensDataset(config, split=s, size=n, image_size=SIZE, cache=True)
            for s, n in zip(("train", "val", "test"), sizes, strict=True)]
    description = {"kind": "simulated", "spec": config.name, "data_seed": 0, "simulation_config": config.to_dict()}
    return DataSplits.from_datasets(*sets, class_names=list(config.class_names), description=description)


def train_tiny(model: str, config, out) -> str:
    """A 1-epoch checkpoint of ``model`` on ``config``, trained WITHOUT rotation augmentation."""
    train(TrainConfig(model=model, data=config.name, epochs=1, batch_size=6, robustness_size=0, augment=False,
                      out=str(out), device="cpu", model_kwargs=TINY_KWARGS[model]), data=tiny_splits(config))
    return str(out)


@pytest.fixture(scope="session")
def checkpoints(tmp_path_factory) -> dict[str, str]:
    """3-class tiny checkpoints of the twins cnn and gcnn."""
    root = tmp_path_factory.mktemp("shift_checkpoints")
    return {name: train_tiny(name, TINY, root / name) for name in ("cnn", "gcnn")}


@pytest.fixture(scope="session")
def old_class_checkpoint(tmp_path_factory) -> str:
    """A tiny cnn trained on the two old classes (cdm, no_sub) of the few-shot task."""
    return train_tiny("cnn", old_class_config(TINY, "axion"), tmp_path_factory.mktemp("fewshot") / "cnn")
