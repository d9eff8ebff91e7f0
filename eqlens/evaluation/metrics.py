"""Metrics in numpy: classification (accuracy, ROC curves, AUC, confusion, calibration) and regression
(MSE, MAE, R^2).

Everything takes ``probs [N, K]`` (softmax of the logits, rows sum to 1) and integer ``labels [N]``.
AUC is the Mann-Whitney statistic: the probability that a random positive scores above a random
negative, ties counting one half. It equals the trapezoidal area under :func:`roc_curve`, and is
NaN when one of the two classes is absent (JSON writers turn NaN into ``null``).

One-vs-rest AUC of class ``k`` ranks every image by ``probs[:, k]`` with class ``k`` as positive;
the macro AUC is the unweighted mean over classes (the DeepLense papers' "macro OvR"). Scores are
softmax probabilities, not raw logits: a logit of one class is not comparable across images once the
other logits move (the seed computed AUC on logits).

Regression metrics take predicted and true values ``[N]`` in the same (physical) units:
MSE ``mean (p - t)^2``, MAE ``mean |p - t|`` and ``R^2 = 1 - sum (p - t)^2 / sum (t - mean t)^2``
(NaN when the true values do not vary, as for fewer than two images).
"""

from __future__ import annotations

import math

import numpy as np


def _as_numpy(x) -> np.ndarray:
    if hasattr(x, "detach"):
        # float64, not float32: a regression target near -23 (log10 eV) would lose ~1e-6 of its value
        x = x.detach().double().cpu().numpy() if x.is_floating_point() else x.detach().cpu().numpy()
    return np.asarray(x)


def softmax(logits) -> np.ndarray:
    """Row-wise softmax of ``[N, K]`` logits, in float64, stable for large logits."""
    z = _as_numpy(logits).astype(np.float64)
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def accuracy(probs, labels) -> float:
    """Share of rows whose arg-max equals the label (NaN for no rows)."""
    probs, labels = _as_numpy(probs), _as_numpy(labels)
    if len(labels) == 0:
        return float("nan")
    return float((probs.argmax(axis=1) == labels).mean())


def average_ranks(scores) -> np.ndarray:
    """1-based ranks of ``scores [N]`` in ascending order; tied scores share their mean rank."""
    scores = _as_numpy(scores).astype(np.float64)
    order = np.argsort(scores, kind="mergesort")
    sorted_scores = scores[order]
    # Start of each run of equal scores in sorted order.
    starts = np.flatnonzero(np.r_[True, sorted_scores[1:] != sorted_scores[:-1]])
    ends = np.r_[starts[1:], len(scores)]
    run_rank = (starts + 1 + ends) / 2.0  # mean of ranks starts+1 .. ends
    ranks = np.empty(len(scores), dtype=np.float64)
    ranks[order] = np.repeat(run_rank, ends - starts)
    return ranks


def binary_auc(scores, positive) -> float:
    """Area under the ROC curve of ``scores [N]`` for the boolean mask ``positive [N]``."""
    positive = _as_numpy(positive).astype(bool)
    n_pos = int(positive.sum())
    n_neg = len(positive) - n_pos
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    rank_sum = average_ranks(scores)[positive].sum()
    return float((rank_sum - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def roc_curve(scores, positive) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """ROC of ``scores [N]`` against ``positive [N]``: ``(fpr, tpr, thresholds)``.

    One point per distinct score, from the strictest threshold down; the curve starts at (0, 0)
    with threshold +inf and ends at (1, 1). A point at threshold ``t`` counts ``score >= t`` as
    positive. Rates are NaN when a class is absent."""
    scores = _as_numpy(scores).astype(np.float64)
    positive = _as_numpy(positive).astype(bool)
    order = np.argsort(-scores, kind="mergesort")
    s, p = scores[order], positive[order]
    # Last index of each run of equal scores: ties enter the curve together.
    last = np.flatnonzero(np.r_[s[1:] != s[:-1], True])
    tp = np.cumsum(p)[last]
    fp = (last + 1) - tp
    n_pos, n_neg = int(p.sum()), int((~p).sum())
    with np.errstate(invalid="ignore", divide="ignore"):
        tpr = np.r_[0.0, tp / n_pos] if n_pos else np.full(len(last) + 1, np.nan)
        fpr = np.r_[0.0, fp / n_neg] if n_neg else np.full(len(last) + 1, np.nan)
    return fpr, tpr, np.r_[np.inf, s[last]]


def one_vs_rest_auc(probs, labels) -> np.ndarray:
    """Per-class AUC ``[K]``: class ``k`` against the rest, ranked by ``probs[:, k]``."""
    probs, labels = _as_numpy(probs), _as_numpy(labels)
    return np.array([binary_auc(probs[:, k], labels == k) for k in range(probs.shape[1])])


def macro_auc(probs, labels) -> float:
    """Mean one-vs-rest AUC over the classes present (NaN if none is defined)."""
    per_class = one_vs_rest_auc(probs, labels)
    return float(np.nanmean(per_class)) if np.isfinite(per_class).any() else float("nan")


def confusion_matrix(labels, predictions, num_classes: int) -> np.ndarray:
    """``[K, K]`` counts: row = true class, column = predicted class."""
    labels, predictions = _as_numpy(labels).astype(np.int64), _as_numpy(predictions).astype(np.int64)
    counts = np.bincount(labels * num_classes + predictions, minlength=num_classes * num_classes)
    return counts.reshape(num_classes, num_classes)


def classification_report(probs, labels, class_names: list[str], with_roc: bool = True) -> dict:
    """The metrics of one split as plain data (see docs/training.md for the keys).

    ``accuracy``, ``auc_macro``, ``per_class_auc`` (name -> AUC), ``confusion`` (rows true,
    columns predicted, in ``class_names`` order), ``n`` and, if ``with_roc``, ``roc``
    (name -> ``{"fpr", "tpr", "thresholds"}`` lists)."""
    probs, labels = _as_numpy(probs), _as_numpy(labels).astype(np.int64)
    if probs.ndim != 2 or probs.shape[1] != len(class_names) or len(probs) != len(labels):
        raise ValueError(f"probs {probs.shape} / labels {labels.shape} do not fit {len(class_names)} classes")
    per_class = one_vs_rest_auc(probs, labels)
    report = {
        "n": int(len(labels)),
        "accuracy": accuracy(probs, labels),
        "auc_macro": macro_auc(probs, labels),
        "per_class_auc": {name: float(a) for name, a in zip(class_names, per_class, strict=True)},
        "confusion": confusion_matrix(labels, probs.argmax(axis=1), len(class_names)).tolist(),
    }
    if with_roc:
        report["roc"] = {}
        for k, name in enumerate(class_names):
            fpr, tpr, thr = roc_curve(probs[:, k], labels == k)
            report["roc"][name] = {"fpr": fpr.tolist(), "tpr": tpr.tolist(), "thresholds": thr.tolist()}
    return report


def regression_report(predicted, true) -> dict:
    """``{"n", "mse", "mae", "rmse", "r2"}`` of ``predicted [N]`` against ``true [N]``, in float64."""
    p = _as_numpy(predicted).astype(np.float64).reshape(-1)
    t = _as_numpy(true).astype(np.float64).reshape(-1)
    if p.shape != t.shape:
        raise ValueError(f"{p.size} predictions for {t.size} true values")
    if p.size == 0:
        nan = float("nan")
        return {"n": 0, "mse": nan, "mae": nan, "rmse": nan, "r2": nan}
    residual = p - t
    mse = float(np.mean(residual**2))
    total = float(np.sum((t - t.mean()) ** 2))
    r2 = 1.0 - float(np.sum(residual**2)) / total if total > 0 else float("nan")
    return {"n": int(p.size), "mse": mse, "mae": float(np.mean(np.abs(residual))), "rmse": math.sqrt(mse), "r2": r2}


def normalised_confusion(confusion) -> np.ndarray:
    """``[K, K]`` confusion counts (rows true) as row fractions: each row sums to 1 (the recall of its
    class on the diagonal); a class with no images keeps a row of NaN."""
    counts = _as_numpy(confusion).astype(np.float64)
    totals = counts.sum(axis=1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(totals > 0, counts / totals, np.nan)


def reliability(probs, labels, bins: int = 10) -> dict:
    """The reliability diagram of ``probs [N, K]``: the top-label confidence ``max_k probs`` cut into
    ``bins`` equal-width bins of [0, 1] (right-closed, the first also holds 0), and per bin the image
    count, the mean confidence and the accuracy (share whose arg-max is the label; NaN for an empty bin).

    ``ece``, the expected calibration error, is ``sum_b (n_b / N) |accuracy_b - confidence_b|`` (Guo et
    al. 2017; 0 for a calibrated model), ``mce`` the largest gap over non-empty bins. Plain data:
    ``{"edges" [bins+1], "count", "confidence", "accuracy" [bins], "ece", "mce", "n"}``."""
    probs, labels = _as_numpy(probs).astype(np.float64), _as_numpy(labels).astype(np.int64)
    if probs.ndim != 2 or len(probs) != len(labels):
        raise ValueError(f"probs {probs.shape} / labels {labels.shape}: need [N, K] and [N]")
    if bins < 1:
        raise ValueError(f"bins must be at least 1, got {bins}")
    edges = np.linspace(0.0, 1.0, bins + 1)
    confidence = probs.max(axis=1) if len(probs) else np.zeros(0)
    correct = (probs.argmax(axis=1) == labels) if len(probs) else np.zeros(0, dtype=bool)
    which = np.clip(np.searchsorted(edges, confidence, side="left") - 1, 0, bins - 1)
    count = np.bincount(which, minlength=bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_conf = np.bincount(which, weights=confidence, minlength=bins) / count
        acc = np.bincount(which, weights=correct.astype(np.float64), minlength=bins) / count
    gaps = np.abs(acc - mean_conf)
    filled = count > 0
    n = int(len(labels))
    return {
        "n": n,
        "edges": edges.tolist(),
        "count": count.astype(int).tolist(),
        "confidence": mean_conf.tolist(),
        "accuracy": acc.tolist(),
        "ece": float((count[filled] / n * gaps[filled]).sum()) if n else float("nan"),
        "mce": float(gaps[filled].max()) if filled.any() else float("nan"),
    }
