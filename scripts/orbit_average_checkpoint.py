"""Make an orbit-averaged gcnn checkpoint from a trained one: the same weights, ``orbit_turns`` set.

    .venv/bin/python scripts/orbit_average_checkpoint.py checkpoints/model_i_flagship campaigns/ring_orbit4 --turns 4

The new model averages the class probabilities over the picture turned by ``k * 360 / (N m)`` deg
(``eqlens.models.gcnn``, ``orbit_turns``): no parameter changes, no training. Its card is the source's
with ``build_config.orbit_turns`` set, ``training.derived_from`` naming the source (path, the sha256 of
its weights file, the turns) and the validation metrics measured again on the card's own validation split
(the source's test metrics are dropped: they were another model's; ``scripts/ship_checkpoint.py``
measures the test of the derived one). The destination must be empty or absent.
"""

from __future__ import annotations

import argparse
import hashlib
from pathlib import Path

from eqlens.checkpoint import load_checkpoint, write_checkpoint
from eqlens.evaluation.checkpoint import evaluate_checkpoint
from eqlens.models import create_from_config
from eqlens.training.reporting import card_summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source", type=Path)
    parser.add_argument("dest", type=Path)
    parser.add_argument("--turns", type=int, required=True)
    args = parser.parse_args()
    if args.dest.exists() and any(args.dest.iterdir()):
        raise SystemExit(f"{args.dest} is not empty: remove it first")
    source_model, card = load_checkpoint(args.source)
    if card.name != "gcnn":
        raise SystemExit(f"{args.source} is a {card.name}: orbit averaging is a gcnn option")
    build = {**card.build_config, "orbit_turns": args.turns}
    model = create_from_config(build)
    model.load_state_dict(source_model.state_dict())
    weights = (args.source / "model.safetensors").read_bytes()
    derived = {"source": str(args.source), "source_sha256": hashlib.sha256(weights).hexdigest(),
               "orbit_turns": args.turns, "trained": False}
    card = card.replace(build_config=build, metrics={}, training={**card.training, "derived_from": derived})
    write_checkpoint(args.dest, model, card)
    report = evaluate_checkpoint(args.dest, split="val", robustness_size=0, device="cpu")
    summary = card_summary(report)
    write_checkpoint(args.dest, model, card.replace(metrics={"val": summary}))
    print(f"{args.dest}: {args.source} with orbit_turns {args.turns}; validation accuracy {summary['accuracy']:.4f}, "
          f"macro AUC {summary['auc_macro']:.4f} on {summary['n']} lenses")


if __name__ == "__main__":
    main()
