"""Uncertainty of accuracies measured on a finite set of lenses: binomial standard errors and the paired
McNemar test of two models scored on the same lenses.

    binomial_se(0.95, 300)                       # 0.0126: the s.e. of an accuracy of 0.95 on 300 lenses
    mcnemar(correct_a, correct_b)                # {"n", "a_only", "b_only", "p_value", ...}

McNemar uses only the discordant lenses (one model right, the other wrong): under the null hypothesis of
equal accuracy each discordant lens is a fair coin, so the two-sided p-value is the exact binomial tail
``2 P(X <= min(a_only, b_only))``, X ~ Bin(a_only + b_only, 1/2), capped at 1 (``scipy.stats.binomtest``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence


def binomial_se(accuracy: float, n: int) -> float:
    """Standard error ``sqrt(p (1 - p) / n)`` of an accuracy ``p`` measured on ``n`` independent lenses
    (NaN for ``n = 0``)."""
    if n <= 0 or accuracy != accuracy:
        return math.nan
    return math.sqrt(max(accuracy * (1.0 - accuracy), 0.0) / n)


def mcnemar(correct_a: Sequence[bool], correct_b: Sequence[bool]) -> dict:
    """Exact two-sided McNemar test of models A and B right/wrong on the same ``n`` lenses, in order.

    Returns ``{"n", "accuracy_a", "accuracy_b", "difference" (A - B), "a_only" (A right, B wrong),
    "b_only", "p_value"}``; ``p_value`` is 1 when no lens is discordant."""
    from scipy.stats import binomtest

    if len(correct_a) != len(correct_b):
        raise ValueError(f"McNemar needs the same lenses: {len(correct_a)} against {len(correct_b)} results")
    a = [bool(v) for v in correct_a]
    b = [bool(v) for v in correct_b]
    n = len(a)
    a_only = sum(x and not y for x, y in zip(a, b, strict=True))
    b_only = sum(y and not x for x, y in zip(a, b, strict=True))
    discordant = a_only + b_only
    p = 1.0 if discordant == 0 else float(binomtest(min(a_only, b_only), discordant, 0.5).pvalue)
    acc_a, acc_b = (sum(a) / n, sum(b) / n) if n else (math.nan, math.nan)
    return {"n": n, "accuracy_a": acc_a, "accuracy_b": acc_b, "difference": acc_a - acc_b,
            "a_only": a_only, "b_only": b_only, "p_value": min(p, 1.0)}
