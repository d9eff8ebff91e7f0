"""Tasks: what a model is trained to output, the loss, and how outputs become physical values.

``"classification"`` (the default): ``K`` logits, cross-entropy, labels ``[B]`` int64.
``"axion_mass"`` / ``"subhalo_mass"``: one output, regressed with the MSE on the *standardised*
target ``z = (y - mean) / std`` (:class:`TargetScaler`, fitted on the training split), so the loss
has the same scale for every target; predictions come back in physical units as ``mean + std * z``
(the targets and their units: :mod:`eqlens.data.regression`). The card stores the task, the target
and the scaler (``card["task"]``, read by :class:`eqlens.checkpoint.ModelCard`), so a checkpoint alone
turns images into physical values (:func:`eqlens.checkpoint.predict`).

The regression head is the model's usual head with one output: an invariant model's outputs are
invariant whatever their number, so a regression gcnn or eqcvt_inv predicts the same mass for
every exact rotation of a lens.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from ..data.regression import CLASSIFICATION, is_regression
from ..errors import TrainingError

TASKS = (CLASSIFICATION, "axion_mass", "subhalo_mass")


def regression_target(task: str):
    """The :class:`eqlens.data.regression.RegressionTarget` of a regression task."""
    from ..data.regression import get_target

    try:
        return get_target(task)
    except ValueError as err:
        raise TrainingError(str(err)) from None


@dataclass(frozen=True)
class TargetScaler:
    """``z = (y - mean) / std`` and back; computed in float64 so the round trip is exact to ~1e-15."""

    mean: float
    std: float

    @classmethod
    def fit(cls, values) -> TargetScaler:
        """Mean and (population) std of ``values``; a constant target gets std 1 (nothing to scale)."""
        values = np.asarray(values, dtype=np.float64)
        if values.size == 0 or not np.isfinite(values).all():
            raise TrainingError(f"cannot standardise {values.size} targets: need at least one, all finite")
        std = float(values.std())
        return cls(float(values.mean()), std if std > 0 else 1.0)

    def encode(self, y: torch.Tensor) -> torch.Tensor:
        """Physical ``y`` -> standardised float32 (the loss compares it with float32 outputs)."""
        return ((y.double() - self.mean) / self.std).float()

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Standardised outputs -> physical values, float64."""
        return z.double() * self.std + self.mean

    def to_dict(self) -> dict:
        return {"mean": self.mean, "std": self.std}

    @classmethod
    def from_dict(cls, d: Mapping) -> TargetScaler:
        mean, std = float(d["mean"]), float(d["std"])
        if not (math.isfinite(mean) and math.isfinite(std) and std > 0):
            raise ValueError(f"invalid target normalisation mean={mean}, std={std}")
        return cls(mean, std)


def regression_loss(outputs: torch.Tensor, y: torch.Tensor, scaler: TargetScaler) -> torch.Tensor:
    """MSE between ``outputs [B, 1]`` and the standardised physical targets ``y [B]``."""
    return F.mse_loss(outputs.float().reshape(-1), scaler.encode(y))


class Objective:
    """What the training loop asks of a task: the output width, the loss, and a running figure.

    The running figure is summed over the epoch and divided by the image count: classification
    counts correct arg-max predictions (-> accuracy), regression sums ``|prediction - y|`` in
    physical units (-> MAE). ``scaler`` is required for regression and ignored otherwise."""

    def __init__(self, task: str, scaler: TargetScaler | None = None):
        if is_regression(task) and scaler is None:
            raise TrainingError(f"the {task} task needs a target normalisation")
        self.task = task
        self.scaler = scaler if is_regression(task) else None
        self.running = "mae" if self.scaler is not None else "accuracy"

    def num_outputs(self, class_names) -> int:
        return 1 if self.scaler is not None else len(class_names)

    def loss(self, outputs: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        if self.scaler is None:
            return F.cross_entropy(outputs.float(), y)
        return regression_loss(outputs, y, self.scaler)

    def running_sum(self, outputs: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """float64 scalar tensor on the outputs' device (no host sync)."""
        outputs = outputs.detach()
        if self.scaler is None:
            return (outputs.argmax(1) == y).sum().double()
        return (self.scaler.decode(outputs.reshape(-1)) - y.double()).abs().sum()


def task_record(task: str, scaler: TargetScaler | None = None) -> dict:
    """``card["task"]``: ``{"name"}``, plus ``target``, ``unit``, ``normalisation`` for regression."""
    if not is_regression(task):
        return {"name": task}
    target = regression_target(task)
    return {"name": task, "target": target.name, "unit": target.unit, "normalisation": scaler.to_dict()}
