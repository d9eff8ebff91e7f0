"""Accuracy against the ideal observer's distance D: a PNG from an ``eqlens detectability --checkpoint ... --json``
report (left: the checkpoint's error rate per D_ax bin with binomial s.e., and the ideal observer's
Phi(-D/2) in words; right: the distribution of each D over the lenses).

    .venv/bin/python scripts/detectability_figure.py docs/detectability.json docs/figures/accuracy_vs_detectability.png
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from eqlens.analysis.detectability import D_AX_BINS, error_rate_by_distance  # noqa: E402

LABELS = {"D_sub": "subhalos removed", "D_nosub_theta_E": "smooth lens, source + theta_E free",
          "D_ax": "closest axion scene", "D_ax_theta_E": "closest axion scene, theta_E free"}


def main(source: str, out: str) -> int:
    report = json.loads(Path(source).read_text())
    rows, settings = report["lenses"], report["settings"]
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.6))
    bins = error_rate_by_distance([r["D_ax"] for r in rows], [r["correct"] for r in rows])
    x = np.arange(len(bins))
    rate = np.array([b["error_rate"] for b in bins])
    se = np.array([b["se"] for b in bins])
    left.bar(x, np.nan_to_num(rate), yerr=np.nan_to_num(se), color="#4c72b0", capsize=4,
             label=f"{Path(settings['checkpoint']).name}: error rate (± s.e.)")
    for xi, b in zip(x, bins, strict=True):
        left.text(xi, (0 if math.isnan(b["error_rate"]) else b["error_rate"]) + 0.03, f"n={b['n']}", ha="center",
                  fontsize=8)
    at8, at5 = (0.5 * math.erfc(d / 2 / math.sqrt(2)) for d in (8, 5))
    left.text(0.25, 0.80, f"ideal observer between two fully specified scenes: Phi(-D/2),\n{at8:.0e} at D = 8, "
              f"{at5:.3f} at D = 5", transform=left.transAxes, va="top", fontsize=8)
    names = [f"< {b['hi']:g}" if b["lo"] == 0 else (f"> {b['lo']:g}" if math.isinf(b["hi"]) else
             f"{b['lo']:g}-{b['hi']:g}") for b in bins]
    left.set_xticks(x, names)
    left.set_xlabel("D_ax: whitened distance to the closest axion scene")
    left.set_ylabel("share of CDM lenses misclassified")
    left.set_ylim(0, 1.15)
    left.set_title("Where the classifier loses lenses the data still separate")
    left.legend(fontsize=8, loc="upper right", bbox_to_anchor=(1.0, 0.93))
    top = max(max(r[k] for r in rows) for k in LABELS if k in rows[0])
    edges = np.linspace(0, min(top, 120), 41)
    for k, label in LABELS.items():
        if k in rows[0] and not math.isnan(rows[0][k]):
            right.hist([r[k] for r in rows], bins=edges, histtype="step", lw=1.5, label=label)
    for v in (7, 10):
        right.axvline(v, color="gray", lw=0.8, ls=":")
    right.set_xlabel("D (whitened distance under the recipe's noise)")
    right.set_ylabel("CDM lenses")
    right.set_title(f"{len(rows)} fresh CDM lenses of {settings['config']}")
    right.legend(fontsize=8)
    fig.tight_layout()
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    print("wrote", out, "bins", D_AX_BINS)
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:3]))
