"""Training and evaluation (checkpoints: :mod:`eqlens.checkpoint`, re-exported here).

    from eqlens.training import TrainConfig, train, load_checkpoint, evaluate_model, predict
    result = train(TrainConfig(model="cnn", data="binary", epochs=5, out="checkpoints/cnn"))
    result = train(TrainConfig(model="gcnn", data="model_i", task="axion_mass", out="checkpoints/axion"))
    model, card = load_checkpoint("checkpoints/axion"); log10_mass = predict(model, card, images).values
    result = train(TrainConfig(model="gcnn", data="/data/my_lenses", init_from="checkpoints/model_i_gcnn"))
    result = train(TrainConfig(model="gcnn", data="model_i", augment_mode="scene"))  # turn skies, not pictures

Names are imported on first use, so ``eqlens.training.metrics`` does not pull in the models.
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "TrainConfig": "config",
    "train": "trainer",
    "TrainResult": "trainer",
    "Progress": "reporting",
    "DataSplits": "..data.splits",
    "load_checkpoint": "..checkpoint",
    "read_checkpoint": "..checkpoint",
    "write_checkpoint": "..checkpoint",
    "evaluate_model": "evaluate",
    "evaluate_checkpoint": "checkpoint_evaluation",
    "evaluate_regression": "evaluate_regression",
    "predict": "..checkpoint.predict",
    "ModelCard": "..checkpoint.card",
    "TargetScaler": "targets",
    "TASKS": "targets",
    "transfer_weights": "..checkpoint.transfer",
    "sky_robustness": "evaluate",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    module = _EXPORTS[name]
    return getattr(importlib.import_module(module if module.startswith(".") else f".{module}", __name__), name)
