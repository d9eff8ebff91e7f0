"""Parameters for registry-wide tests: every registered model, built tiny, for each group it can use.

New models are picked up from ``eqlens.models.names()`` and their spec flags; nothing here names
a model except :data:`SLOW_MODELS`.
"""

from __future__ import annotations

import pytest
import torch

from eqlens.models import LensModel, create, names, spec

GROUPS = ("C4", "C8", "D4")
"""Groups every model with ``spec.uses_group`` is built for."""

PLAIN_MODEL_GROUP = "D4"
"""Elements a model without a group is measured with: the quarter turns and the flips."""

SLOW_MODELS = frozenset({"gsa"})
"""Models over a few seconds a case even when tiny (GSA's attention grows as |G|^3)."""

TINY_SIZE = 33


def tiny_size(name: str) -> int:
    """An odd side (stride-2 grids are rot90-symmetric only on odd sizes), at least the model's minimum."""
    size = max(TINY_SIZE, spec(name).min_image_size)
    return size if size % 2 else size + 1


def model_cases(groups=GROUPS) -> list:
    """``pytest.param(name, group)`` for each model and each of ``groups`` it is built for (plain
    models once, with :data:`PLAIN_MODEL_GROUP`); slow models marked ``slow``."""
    cases = []
    for name in names():
        marks = (pytest.mark.slow,) if name in SLOW_MODELS else ()
        for group in groups if spec(name).uses_group else (PLAIN_MODEL_GROUP,):
            cases.append(pytest.param(name, group, marks=marks, id=f"{name}-{group}"))
    return cases


def build(name: str, group: str, size: int | None = None, num_classes: int = 3, seed: int = 0) -> LensModel:
    """The model from the registry with its default widths, seeded, in eval mode."""
    torch.manual_seed(seed)
    model = create(name, num_classes=num_classes, group=group, image_size=size or tiny_size(name))
    return model.eval()


def random_images(size: int, batch: int = 2, seed: int = 0) -> torch.Tensor:
    """``[batch, 1, size, size]`` in [0, 1], like normalised lensing images."""
    return torch.rand(batch, 1, size, size, generator=torch.Generator().manual_seed(seed))
