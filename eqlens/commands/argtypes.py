"""Argument types of the command line: a number out of range is refused by the parser itself, naming the
flag and the accepted range (``argument --lr: must be a number in (0, 10], got 1e+300``), before anything
is built or read. The ranges are the ones :class:`eqlens.core.run_config.TrainConfig` enforces."""

from __future__ import annotations

import argparse
import math

from ..checkpoint.card import MAX_CLASSES
from ..core.run_config import (
    MAX_BATCH_SIZE,
    MAX_EPOCHS,
    MAX_IMAGE_SIZE,
    MAX_LR,
    MAX_SEED,
    MAX_THREADS,
    MAX_WEIGHT_DECAY,
    MAX_WORKERS,
)
from ..data.transforms import MAX_INPUT_SIZE


def _bounds(low, high, low_open: bool = False) -> str:
    if high is None:
        return f"{'>' if low_open else '>='} {low:g}"
    return f"in {'(' if low_open else '['}{low:g}, {high:g}]"


def integer(low: int | None = None, high: int | None = None):
    """An ``argparse`` type: an integer in ``[low, high]`` (either end open when None)."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
        if (low is not None and value < low) or (high is not None and value > high):
            raise argparse.ArgumentTypeError(f"must be an integer {_bounds(low, high)}, got {value}")
        return value

    parse.__name__ = "integer"
    return parse


def number(low: float = 0.0, high: float | None = None, *, low_open: bool = False):
    """An ``argparse`` type: a finite number in ``[low, high]`` (``(low, high]`` with ``low_open``)."""

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
        too_low = value <= low if low_open else value < low
        if not math.isfinite(value) or too_low or (high is not None and value > high):
            raise argparse.ArgumentTypeError(f"must be a finite number {_bounds(low, high, low_open)}, got {text}")
        return value

    parse.__name__ = "number"
    return parse


POSITIVE = integer(1)
COUNT = integer(0)
EPOCHS = integer(1, MAX_EPOCHS)
BATCH_SIZE = integer(1, MAX_BATCH_SIZE)
SEED = integer(0, MAX_SEED)
IMAGE_SIZE = integer(1, MAX_IMAGE_SIZE)
WORKERS = integer(0, MAX_WORKERS)
CROP = integer(1, MAX_INPUT_SIZE)
CLASSES = integer(1, MAX_CLASSES)
THREADS = integer(1, MAX_THREADS)
LR = number(0.0, MAX_LR, low_open=True)
WEIGHT_DECAY = number(0.0, MAX_WEIGHT_DECAY)
MINUTES = number(0.0, 60.0 * 24 * 366, low_open=True)
HOURS = number(0.0, 24.0 * 366, low_open=True)
