"""Regression checkpoints in the app: the card's task, its one output in physical units, a lens's truth.

A regression model (``eqlens train --task axion_mass|subhalo_mass``) has one output, trained on the
standardised target; its card's scaler turns that output back into physical units. The orbit
machinery is shared with classifiers: an orbit's logits ``[A, 1]`` decode to the value's curve
``[A]``. No st.* here.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import torch

from eqlens.checkpoint import ModelCard
from eqlens.core.tasks import TargetScaler


@dataclass(frozen=True)
class RegressionTask:
    """``task`` (e.g. ``"axion_mass"``), the target's ``name`` and ``unit``, and the card's scaler."""

    task: str
    name: str
    unit: str
    scaler: TargetScaler

    def values(self, logits) -> np.ndarray:
        """One-output logits ``[N, 1]`` (tensor or array) -> physical values ``[N]`` float64."""
        z = torch.as_tensor(np.asarray(logits, dtype=np.float64)).reshape(-1)
        return self.scaler.decode(z).numpy()

    def true_value(self, truth: Mapping | None) -> float | None:
        """The target of a simulated lens, as the core computed it when the lens was simulated
        (``truth["targets"]``, see app/lenses.py); None when the lens does not carry it (another
        class, or a lens from a file or an upload)."""
        return ((truth or {}).get("targets") or {}).get(self.task)


def regression_task(card: ModelCard | None) -> RegressionTask | None:
    """The card's regression task, None for a classifier (or no card)."""
    if card is None or card.scaler is None:
        return None
    return RegressionTask(card.task, str(card.task_record.get("target", card.task)), str(card.unit or ""),
                          card.scaler)


def exact_change(angles: np.ndarray, values: np.ndarray) -> float | None:
    """Largest ``|v(g x) - v(x)|`` (physical units) over the pixel-exact 90-deg angles of the orbit;
    None when the orbit lacks 0 deg or every other multiple of 90 deg."""
    rows = [i for i, a in enumerate(np.asarray(angles)) if abs(a % 90.0) < 1e-9]
    if len(rows) < 2 or abs(angles[rows[0]]) > 1e-9:
        return None
    return float(np.max(np.abs(values[rows] - values[rows[0]])))
