"""The model comparison: several models trained and tested on the same simulated data over seeds
(``eqlens bench``; not the speed benchmarks of ``benchmarks/``).

For every data set and model, :func:`run_comparison` trains one run per seed (``TrainConfig.seed``; the
data seed stays fixed, so every run sees the same images), reads the held-out test metrics and the
robustness report of the best epoch, and :func:`format_table` writes ONE markdown table: parameters,
test accuracy and macro AUC (mean and std over seeds), exact invariance error, the EqCvT project's
8 x 45 deg logit std, worst-angle accuracy, training time, img/s, device and date. A regression
comparison (``task="axion_mass"`` or ``"subhalo_mass"``) has test R^2, MAE and RMSE in the target's unit, the
invariance error in that unit and the worst-angle MAE instead.
"""

from __future__ import annotations

import datetime as _dt
import math
import warnings
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import numpy as np

from ..core.run_config import TrainConfig
from ..data.regression import CLASSIFICATION, is_regression

COLUMNS = ("data", "model", "group", "params", "seeds", "test acc", "macro AUC", "invariance err",
           "8x45 logit std", "worst-angle acc (turned sky)", "worst-angle acc (resampled)", "train time (s)", "img/s",
           "device", "date")
REGRESSION_COLUMNS = ("data", "model", "group", "params", "seeds", "test R^2", "test MAE", "test RMSE",
                      "invariance err", "worst-angle MAE (turned sky)", "worst-angle MAE (resampled)",
                      "train time (s)", "img/s", "device", "date")
_AVERAGED = ("accuracy", "auc_macro", "r2", "mae", "rmse", "invariance_error", "logit_std_8x45",
             "worst_angle_accuracy", "worst_angle_mae", "sky_worst_angle_accuracy", "sky_worst_angle_mae",
             "train_time_s", "images_per_s")


def _mean_std(values: Sequence[float | None]) -> tuple[float, float]:
    finite = np.array([v for v in values if v is not None and math.isfinite(v)], dtype=np.float64)
    if finite.size == 0:
        return math.nan, math.nan
    return float(finite.mean()), float(finite.std(ddof=1)) if finite.size > 1 else math.nan


def run_comparison(models: Sequence[str], datasets: Sequence[str] = ("binary", "model_i"),
                   seeds: Sequence[int] = (0, 1, 2), *, out_dir: str | None = None, progress_bar: bool = False,
                   on_run: Callable[[str, str, int, dict], None] | None = None, **config: object) -> list[dict]:
    """Train every ``model`` on every ``dataset`` once per seed; one aggregated row per (data, model).

    ``config`` holds further :class:`TrainConfig` fields shared by all runs (``epochs``,
    ``train_size``, ``image_size``, ``device``...). ``out_dir``: keep each run's checkpoint in
    ``out_dir/<data>/<model>/seed<k>``. ``on_run(data, model, seed, run)`` is called after each run, ``data``
    the data its images are (:func:`rendered_data`): runs resumed on other data than the config of that name
    renders (the line vortex of a run whose record has no ``simulation_config``) make a row of their own, with a
    warning."""
    from .. import models as registry
    from ..errors import TrainingError
    from ..training.trainer import train

    for name in models:  # fail on a typo now, not after hours of training the others
        try:
            registry.spec(name)
        except ValueError as err:
            raise TrainingError(str(err)) from None
    rows = []
    for data in datasets:
        for model in models:
            runs: dict[str, list[dict]] = {}  # by the data each run's images are (rendered_data)
            for seed in seeds:
                out = str(Path(out_dir) / data / model / f"seed{seed}") if out_dir else None
                result = train(TrainConfig(model=model, data=data, seed=int(seed), out=out, **config),
                               progress_bar=progress_bar)
                test = result.test_metrics or {}
                robust = test.get("robustness") or {}
                run = {key: test.get(key) for key in ("accuracy", "auc_macro", "r2", "mae", "rmse",
                                                      "invariance_error")}
                run |= {key: robust.get(key) for key in ("logit_std_8x45", "worst_angle_accuracy", "worst_angle_mae")}
                sky = robust.get("sky") or {}
                run |= {f"sky_{key}": sky.get(key) for key in ("worst_angle_accuracy", "worst_angle_mae")}
                run |= {"task": result.card.task, "train_time_s": result.train_time_s,
                        "images_per_s": result.images_per_s, "parameters": result.card.parameters,
                        "group": result.card.group, "device": result.device,
                        "data": rendered_data(result.card.data, data)}
                if run["data"] != data:
                    warnings.warn(f"{data} {model} seed {seed}: a resumed run whose images are {run['data']!r} "
                                  f"(what its checkpoint records), not today's {data!r}; its row is kept apart",
                                  stacklevel=2)
                runs.setdefault(run["data"], []).append(run)
                if on_run is not None:
                    on_run(run["data"], model, int(seed), run)
            rows.extend(aggregate_runs(rendered, model, group) for rendered, group in runs.items())
    return rows


def rendered_data(card_data: Mapping, requested: str) -> str:
    """The data a run's images are, named by the config that renders them: :func:`eqlens.data.splits.data_spec_now`
    of its card's data record (``model_i_line`` for a ``model_i`` record without ``simulation_config``, which a
    resumed bench reads back and goes on with on the line vortex); ``requested`` for a folder, or a record naming
    none. Runs of one table row must share it: a mean over seeds of different data would be no comparison."""
    from ..data.splits import data_spec_now, is_folder_spec

    return requested if is_folder_spec(requested) else data_spec_now(card_data) or requested


def aggregate_runs(data: str, model: str, runs: list[dict]) -> dict:
    """One table row from the per-seed runs of (data, model): mean and sample std of each figure. Runs that
    record other data than ``data`` (:func:`rendered_data`) raise :class:`TrainingError`: never one row."""
    from ..errors import TrainingError

    other = sorted({r["data"] for r in runs if r.get("data", data) != data})
    if other:
        raise TrainingError(f"{model} on {data}: runs on other data ({', '.join(other)}) cannot share its row")
    row = {"data": data, "model": model, "group": runs[0]["group"], "parameters": runs[0]["parameters"],
           "seeds": len(runs), "device": runs[0]["device"], "task": runs[0]["task"],
           "date": _dt.date.today().isoformat()}
    for key in _AVERAGED:
        row[key], row[f"{key}_std"] = _mean_std([r[key] for r in runs])
    return row


def _pm(mean: float, std: float, digits: int = 4) -> str:
    if not math.isfinite(mean):
        return "n/a"
    return f"{mean:.{digits}f}" + (f" ± {std:.{digits}f}" if math.isfinite(std) else "")


def _g(value: float) -> str:
    return "n/a" if not math.isfinite(value) else f"{value:.2g}"


def format_table(rows: list[dict], title: str | None = None) -> str:
    """ONE markdown table of :func:`run_comparison` rows (means over seeds, ± the sample std); the
    regression columns when the rows are of a regression task."""
    if rows and is_regression(rows[0].get("task", CLASSIFICATION)):
        return _regression_table(rows, title)
    lines = [f"# {title}", ""] if title else []
    lines += ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    for r in rows:
        cells = [*_lead_cells(r),
                 _pm(r["accuracy"], r["accuracy_std"]), _pm(r["auc_macro"], r["auc_macro_std"]),
                 _g(r["invariance_error"]), _pm(r["logit_std_8x45"], r["logit_std_8x45_std"], 3),
                 _pm(r["sky_worst_angle_accuracy"], r["sky_worst_angle_accuracy_std"], 3),
                 _pm(r["worst_angle_accuracy"], r["worst_angle_accuracy_std"], 3), *_tail_cells(r)]
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", "Test metrics on a held-out split never used for selection (best epoch picked on validation); "
              "AUC: macro one-vs-rest on softmax; invariance err: max relative logit change over the group's "
              "exact elements; 8x45 logit std: the EqCvT project's std of one logit over 8 x 45 deg; worst-angle "
              "acc over a circle of angles (every 15 deg): turned sky = the test scenes turned and rendered again (the "
              "instrument's own grid and noise, the orientation test proper), resampled = the test pictures turned "
              "by interpolation (masked, supersampled), which also changes the noise texture."]
    return "\n".join(lines) + "\n"


def _lead_cells(r: dict) -> list[str]:
    return [r["data"], r["model"], r["group"] or "none", f"{r['parameters']:,}", str(r["seeds"])]


def _tail_cells(r: dict) -> list[str]:
    return [f"{r['train_time_s']:.1f}", f"{r['images_per_s']:.0f}", r["device"], r["date"]]


def _regression_table(rows: list[dict], title: str | None) -> str:
    from ..data.regression import get_target

    target = get_target(rows[0]["task"])
    lines = [f"# {title}", ""] if title else []
    lines += ["| " + " | ".join(REGRESSION_COLUMNS) + " |", "|" + "---|" * len(REGRESSION_COLUMNS)]
    for r in rows:
        cells = [*_lead_cells(r), _pm(r["r2"], r["r2_std"], 3), _pm(r["mae"], r["mae_std"], 3),
                 _pm(r["rmse"], r["rmse_std"], 3), _g(r["invariance_error"]),
                 _pm(r["sky_worst_angle_mae"], r["sky_worst_angle_mae_std"], 3),
                 _pm(r["worst_angle_mae"], r["worst_angle_mae_std"], 3), *_tail_cells(r)]
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", f"Regression of {target.name} [{target.unit}] on the held-out test lenses (best epoch picked on "
              f"validation MSE); MAE, RMSE and the invariance error (largest change of the prediction under the "
              f"group's exact elements) in {target.unit}; worst-angle MAE over a circle of angles (every 15 deg), "
              f"the test scenes turned and rendered again (turned sky) or the test pictures turned by "
              f"interpolation (resampled)."]
    return "\n".join(lines) + "\n"
