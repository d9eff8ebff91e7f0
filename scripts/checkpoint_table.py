"""Print a markdown table of every checkpoint in a folder, read from the model cards.

    .venv/bin/python scripts/checkpoint_table.py [checkpoints]
"""

from __future__ import annotations

import sys
from pathlib import Path

from eqlens.analysis.equivariance import report_value
from eqlens.checkpoint import read_card
from eqlens.data.splits import data_spec_now
from eqlens.data.transforms import InputSpec


def fmt(value, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def _input(spec: InputSpec) -> str:
    """The model's input side, with the native crop it was taken from when there is one."""
    return f"{spec.image_size} (crop {spec.crop})" if spec.crop else str(spec.image_size)


def rows(folder: Path):
    for card_path in sorted(folder.glob("*/model_card.json")):
        card = read_card(card_path)
        test = card.metrics.get("test") or {}
        robust = test.get("robustness") or {}
        training = card.training
        yield (
            card_path.parent.name, card.name, card.group or "none", f"{card.parameters:,}",
            data_spec_now(card.data) or "-", _input(card.input),
            str(test.get("n", "-")), fmt(test.get("accuracy"), ".3f"), fmt(test.get("auc_macro"), ".4f"),
            fmt((robust.get("invariance_error") or {}).get("max"), ".1e"),
            fmt(robust.get("worst_angle_accuracy"), ".3f"), fmt(report_value(robust, "logit_std_8x45"), ".3f"),
            f"{training['epochs_done']} (best {training['best_epoch']})", fmt(training.get("train_time_s"), ".0f"),
            str(training.get("device", "-")),
        )


def main() -> None:
    folder = Path(sys.argv[1] if len(sys.argv) > 1 else "checkpoints")
    head = ("checkpoint", "model", "group", "params", "data", "px", "test n", "test acc", "macro AUC",
            "exact inv. err", "worst-angle acc", "8x45 logit std", "epochs", "train s", "device")
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    for row in rows(folder):
        print("| " + " | ".join(row) + " |")


if __name__ == "__main__":
    main()
