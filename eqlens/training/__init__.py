"""Training: the trainer, its run setup, resume, epoch loop and reporting, and runs as files.

    from eqlens.core.run_config import TrainConfig
    from eqlens.training import train
    result = train(TrainConfig(model="cnn", data="binary", epochs=5, out="checkpoints/cnn"))
    result = train(TrainConfig(model="gcnn", data="model_i", task="axion_mass", out="checkpoints/axion"))
    result = train(TrainConfig(model="gcnn", data="/data/my_lenses", init_from="checkpoints/model_i_gcnn"))
    result = train(TrainConfig(model="gcnn", data="model_i", augment_mode="scene"))  # turn skies, not pictures

Checkpoints are :mod:`eqlens.checkpoint`, evaluation :mod:`eqlens.evaluation`, the run config
:mod:`eqlens.core.run_config`: each name has one import path. Names here are imported on first use.
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "train": "trainer",
    "TrainResult": "trainer",
    "Progress": "reporting",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
