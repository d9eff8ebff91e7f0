"""The benchmark table: several models trained and tested on the same simulated data over seeds.

For every data set and model, :func:`run_bench` trains one run per seed (``TrainConfig.seed``; the
data seed stays fixed, so every run sees the same images), reads the held-out test metrics and the
robustness report of the best epoch, and :func:`format_table` writes ONE markdown table: parameters,
test accuracy and macro AUC (mean and std over seeds), exact invariance error, the seed's 8 x 45 deg
logit std, worst-angle accuracy, training time, img/s, device and date.
"""

from __future__ import annotations

import datetime as _dt
import math
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from .config import TrainConfig

COLUMNS = ("data", "model", "group", "params", "seeds", "test acc", "macro AUC", "invariance err",
           "seed logit std", "worst-angle acc", "train time (s)", "img/s", "device", "date")


def _mean_std(values: Sequence[float | None]) -> tuple[float, float]:
    finite = np.array([v for v in values if v is not None and math.isfinite(v)], dtype=np.float64)
    if finite.size == 0:
        return math.nan, math.nan
    return float(finite.mean()), float(finite.std(ddof=1)) if finite.size > 1 else math.nan


def run_bench(models: Sequence[str], datasets: Sequence[str] = ("binary", "model_i"), seeds: Sequence[int] = (0, 1, 2),
              *, out_dir: str | None = None, progress_bar: bool = False,
              on_run: Callable[[str, str, int, dict], None] | None = None, **config: object) -> list[dict]:
    """Train every ``model`` on every ``dataset`` once per seed; one aggregated row per (data, model).

    ``config`` holds further :class:`TrainConfig` fields shared by all runs (``epochs``,
    ``train_size``, ``image_size``, ``device``...). ``out_dir``: keep each run's checkpoint in
    ``out_dir/<data>/<model>/seed<k>``. ``on_run(data, model, seed, run)`` is called after each run."""
    from .. import models as registry
    from ..errors import TrainingError
    from .trainer import train

    for name in models:  # fail on a typo now, not after hours of training the others
        try:
            registry.spec(name)
        except ValueError as err:
            raise TrainingError(str(err)) from None
    rows = []
    for data in datasets:
        for model in models:
            runs = []
            for seed in seeds:
                out = str(Path(out_dir) / data / model / f"seed{seed}") if out_dir else None
                result = train(TrainConfig(model=model, data=data, seed=int(seed), out=out, **config),
                               progress_bar=progress_bar)
                test = result.test_metrics or {}
                robust = test.get("robustness") or {}
                run = {"accuracy": test.get("accuracy"), "auc_macro": test.get("auc_macro"),
                       "invariance_error": test.get("invariance_error"),
                       "seed_logit_std": robust.get("seed_logit_std"),
                       "worst_angle_accuracy": robust.get("worst_angle_accuracy"),
                       "train_time_s": result.train_time_s, "images_per_s": result.images_per_s,
                       "parameters": result.card["model"]["parameters"], "group": result.card["group"],
                       "device": result.device}
                runs.append(run)
                if on_run is not None:
                    on_run(data, model, int(seed), run)
            rows.append(_aggregate(data, model, runs))
    return rows


def _aggregate(data: str, model: str, runs: list[dict]) -> dict:
    row = {"data": data, "model": model, "group": runs[0]["group"], "parameters": runs[0]["parameters"],
           "seeds": len(runs), "device": runs[0]["device"],
           "date": _dt.date.today().isoformat()}
    for key in ("accuracy", "auc_macro", "invariance_error", "seed_logit_std", "worst_angle_accuracy",
                "train_time_s", "images_per_s"):
        row[key], row[f"{key}_std"] = _mean_std([r[key] for r in runs])
    return row


def _pm(mean: float, std: float, digits: int = 4) -> str:
    if not math.isfinite(mean):
        return "n/a"
    return f"{mean:.{digits}f}" + (f" ± {std:.{digits}f}" if math.isfinite(std) else "")


def _g(value: float) -> str:
    return "n/a" if not math.isfinite(value) else f"{value:.2g}"


def format_table(rows: list[dict], title: str | None = None) -> str:
    """ONE markdown table of :func:`run_bench` rows (means over seeds, ± the sample std)."""
    lines = [f"# {title}", ""] if title else []
    lines += ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    for r in rows:
        cells = [r["data"], r["model"], r["group"], f"{r['parameters']:,}", str(r["seeds"]),
                 _pm(r["accuracy"], r["accuracy_std"]), _pm(r["auc_macro"], r["auc_macro_std"]),
                 _g(r["invariance_error"]), _pm(r["seed_logit_std"], r["seed_logit_std_std"], 3),
                 _pm(r["worst_angle_accuracy"], r["worst_angle_accuracy_std"], 3),
                 f"{r['train_time_s']:.1f}", f"{r['images_per_s']:.0f}", r["device"], r["date"]]
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", "Test metrics on a held-out split never used for selection (best epoch picked on validation); "
              "AUC: macro one-vs-rest on softmax; invariance err: max relative logit change over the group's "
              "exact elements; seed logit std: the EqCvT seed's 8 x 45 deg figure; worst-angle acc: over "
              "a circle of angles, masked and supersampled."]
    return "\n".join(lines) + "\n"
