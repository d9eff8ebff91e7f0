"""Ship the best checkpoint of a run (a finished one or a campaign still under way) into checkpoints/.

    .venv/bin/python scripts/ship_checkpoint.py campaigns/flagship_gcnn checkpoints/model_i_flagship

The run's best epoch (``RUN/model.safetensors``, picked on validation) is evaluated once on the
held-out test split its card names (the same stream, size and simulation config, ``eqlens evaluate``'s
default: a card that records no config is rendered with the line vortex it was trained on, see
eqlens.data.splits.recorded_simulation_config), with
the robustness report; those test metrics go into the shipped card (``metrics.test``), next to the
validation metrics that selected it. A run stopped before its last epoch keeps
``training.complete: false`` in the shipped card, so nobody mistakes it for a finished one. Weights
are copied unchanged; ``last/`` (the resume state) is never shipped.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from eqlens.checkpoint import load_checkpoint, write_checkpoint
from eqlens.evaluation.checkpoint import evaluate_checkpoint
from eqlens.training.reporting import card_summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path)
    parser.add_argument("dest", type=Path)
    parser.add_argument("--robustness-size", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=64)
    args = parser.parse_args()
    if args.dest.exists() and any(args.dest.iterdir()):
        raise SystemExit(f"{args.dest} is not empty: remove it first (a shipped checkpoint is replaced on purpose)")
    model, card = load_checkpoint(args.run)
    report = evaluate_checkpoint(args.run, split="test", robustness_size=args.robustness_size,
                                 batch_size=args.batch_size, device="cpu")
    summary = card_summary(report)
    card = card.replace(metrics={**card.metrics, "test": summary})
    write_checkpoint(args.dest, model, card)
    print(f"shipped {args.run} (best epoch {card.training['best_epoch']}, complete: "
          f"{card.complete}) to {args.dest}: test accuracy {summary['accuracy']:.4f}, "
          f"macro AUC {summary['auc_macro']:.4f} on {summary['n']} held-out lenses")


if __name__ == "__main__":
    main()
