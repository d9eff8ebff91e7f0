"""Held-out scores of several checkpoints on the same simulated lenses, with standard errors and paired tests.

    .venv/bin/python scripts/population_report.py checkpoints/model_i_varied_flagship \\
        checkpoints/model_i_varied_twin checkpoints/model_i_varied_cvt --data model_i_varied --size 3000 \\
        [--seeds campaigns/varied_flagship campaigns/varied_flagship_s1] [--json docs/population.json]

Every checkpoint is scored on the first ``--size`` lenses of the test split of ``--data`` (data seed 0, the
stream the trainer holds out: no run trains on it), so the lenses are the same for all and the first named
checkpoint is compared with each other by the exact McNemar test on its discordant lenses. A checkpoint
trained on other data is said to be so (the row names the data its card names). Prints a markdown table
(accuracy +- binomial s.e., macro one-vs-rest AUC on softmax, McNemar against the first) and, for
``--seeds``, the mean and spread of the named runs' accuracies.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from eqlens.checkpoint import read_card  # noqa: E402
from eqlens.evaluation.checkpoint import evaluate_checkpoint  # noqa: E402
from eqlens.experiments.statistics import binomial_se, mcnemar  # noqa: E402


def score(path: str, data: str, size: int, device: str) -> dict:
    """``{"name", "trained_on", "accuracy", "se", "auc_macro", "n", "correct": [bool]}`` of one checkpoint."""
    report = evaluate_checkpoint(path, data, split="test", size=size, device=device, robustness_size=0)
    correct = [bool(p["correct"]) for p in report["predictions"]]
    accuracy = sum(correct) / len(correct)
    return {"name": Path(path).name, "path": path, "trained_on": read_card(path).data.get("spec"),
            "accuracy": accuracy, "se": binomial_se(accuracy, len(correct)), "auc_macro": report["auc_macro"],
            "n": len(correct), "correct": correct}


def table(rows: list[dict], data: str) -> str:
    first = rows[0]
    lines = [f"| checkpoint | trained on | accuracy on {data} (n) | macro AUC | vs {first['name']} (McNemar) |",
             "|---|---|---|---|---|"]
    for row in rows:
        if row is first:
            paired = "-"
        else:
            test = mcnemar(first["correct"], row["correct"])
            paired = (f"{test['difference']:+.4f} ({test['a_only']} vs {test['b_only']} discordant, "
                      f"p = {test['p_value']:.2g})")
        lines.append(f"| `{row['name']}` | {row['trained_on']} | {row['accuracy']:.4f} +- {row['se']:.4f} "
                     f"({row['n']}) | {row['auc_macro']:.4f} | {paired} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoints", nargs="+")
    parser.add_argument("--data", required=True, help="a simulation config: the lenses every checkpoint is scored on")
    parser.add_argument("--size", type=int, default=3000)
    parser.add_argument("--seeds", nargs="*", default=[], help="runs of one recipe with other seeds: mean and spread")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--json", default=None, help="write the rows (without per-lens results) here")
    args = parser.parse_args(argv)
    import torch

    torch.set_num_threads(args.threads)
    rows = [score(p, args.data, args.size, args.device) for p in args.checkpoints]
    print(table(rows, args.data))
    seeds = [score(p, args.data, args.size, args.device) for p in args.seeds]
    summary = None
    if len(seeds) >= 2:
        accuracies = [s["accuracy"] for s in seeds]
        summary = {"runs": [s["path"] for s in seeds], "accuracies": accuracies,
                   "mean": statistics.fmean(accuracies), "spread_sd": statistics.stdev(accuracies),
                   "auc_macro": [s["auc_macro"] for s in seeds]}
        print(f"\nseeds ({', '.join(s['name'] for s in seeds)}): accuracy mean {summary['mean']:.4f}, "
              f"sd {summary['spread_sd']:.4f} over {len(seeds)} runs ({', '.join(f'{a:.4f}' for a in accuracies)})")
    if args.json:
        keep = [{k: v for k, v in r.items() if k != "correct"} for r in rows]
        Path(args.json).write_text(json.dumps({"data": args.data, "size": args.size, "rows": keep, "seeds": summary},
                                              indent=1, default=lambda v: None if isinstance(v, float)
                                              and math.isnan(v) else v))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
