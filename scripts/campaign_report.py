"""Tables and figures of training campaigns, read from their model cards (nothing is re-run).

    .venv/bin/python scripts/campaign_report.py curve campaigns/flagship_gcnn [--png docs/figures/x.png]
    .venv/bin/python scripts/campaign_report.py runs campaigns/inputs/*
    .venv/bin/python scripts/campaign_report.py compare campaigns/flagship_gcnn campaigns/flagship_c8 [--png x.png]

``curve``: the validation learning curve of one run against the CPU time it took (training and
validation wall time, summed over the run's epochs and every call that resumed it), from the card of
its latest epoch (``RUN/last/model_card.json``, else ``RUN/model_card.json``). ``runs``: one row per
run: input, images seen, wall-clock minutes (training and validation), best epoch, validation and
held-out test accuracy and AUC. ``compare``: several runs' validation accuracy against their wall hours on
one figure, and a table of the hours each took to first reach 0.93, 0.94 and 0.95 on validation.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from eqlens.checkpoint import ModelCard, read_card


def latest_card(run: Path) -> ModelCard:
    for path in (run / "last" / "model_card.json", run / "model_card.json"):
        if path.is_file():
            return read_card(path)
    raise SystemExit(f"{run}: no model card")


def best_card(run: Path) -> ModelCard:
    path = run / "model_card.json"
    if not path.is_file():
        raise SystemExit(f"{run}: no best checkpoint yet")
    return read_card(path)


def curve_rows(card: ModelCard) -> list[tuple[int, int, float, float, float]]:
    """(epoch, images seen, CPU hours, val accuracy, val AUC) per epoch; CPU time counts training and
    validation (``time_s`` of the epoch plus its share of the run's validation time)."""
    history = card.history
    training = card.training
    wall = float(training.get("wall_time_s") or training["train_time_s"])
    train_total = sum(h["time_s"] for h in history) or 1.0
    val_share = max(wall - train_total, 0.0) / len(history)  # validation time, spread evenly
    images_per_epoch = training["images_seen"] / len(history) if training.get("images_seen") else None
    rows, hours = [], 0.0
    for h in history:
        hours += (h["time_s"] + val_share) / 3600
        seen = int(round(images_per_epoch * h["epoch"])) if images_per_epoch else 0
        rows.append((h["epoch"], seen, hours, h["val_accuracy"], h["val_auc_macro"]))
    return rows


def curve(run: Path, png: Path | None) -> None:
    card = latest_card(run)
    rows = curve_rows(card)
    print("| epoch | images seen | wall hours | val accuracy | val macro AUC |")
    print("|---:|---:|---:|---:|---:|")
    for epoch, seen, hours, acc, auc in rows:
        print(f"| {epoch} | {seen:,} | {hours:.2f} | {acc:.4f} | {auc:.4f} |")
    if png is not None:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(7, 4), dpi=110)
        seen = [r[1] / 1000 for r in rows]
        ax.plot(seen, [r[3] for r in rows], "o-", ms=3, label="validation accuracy (1500 lenses)")
        ax.plot(seen, [r[4] for r in rows], "s-", ms=3, label="validation macro AUC")
        for (epoch, _, _, acc, _), x in zip(rows, seen, strict=True):
            if card.history[epoch - 1].get("bn_recalibrated"):
                ax.plot([x], [acc], "o", ms=7, mfc="none", mec="C3")
        ax.plot([], [], "o", ms=7, mfc="none", mec="C3", label="validated with recalibrated batch norm")
        best = best_card(run) if (run / "model_card.json").is_file() else None
        test = best.metrics.get("test") if best is not None else None
        if test:
            ax.axhline(test["accuracy"], color="C2", ls="--", lw=1,
                       label=f"held-out test accuracy of the best epoch ({test['n']} lenses): {test['accuracy']:.3f}")
        ax.axhline(0.95, color="grey", ls=":", lw=1, label="goal: 0.95 accuracy")
        ax.set_xlabel(f"lenses seen (thousands; {rows[-1][2]:.1f} h of wall time on the shared 2-core CPU)")
        ax.set_ylabel("score")
        ax.set_ylim(0.4, 1.0)
        ax.grid(alpha=0.3)
        ax.legend(loc="lower right", fontsize=8)
        ax.set_title(f"{card.name} ({card.parameters:,} parameters) on fresh Model I lenses")
        fig.tight_layout()
        png.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(png)
        print(f"wrote {png}")


def hours_to_reach(rows: list[tuple[int, int, float, float, float]], level: float) -> float | None:
    """Wall hours of the first epoch whose validation accuracy is at least ``level``; None if none is."""
    return next((hours for _, _, hours, acc, _ in rows if acc >= level), None)


LEVELS = (0.93, 0.94, 0.95)


def compare(folders: list[Path], png: Path | None) -> None:
    cards = [latest_card(run) for run in folders]
    print("| run | model | parameters | epochs | wall hours | best val acc | "
          + " | ".join(f"hours to val {level}" for level in LEVELS) + " |")
    print("|---|---|---:|---:|---:|---:|" + "---:|" * len(LEVELS))
    curves = []
    for run, card in zip(folders, cards, strict=True):
        rows = curve_rows(card)
        curves.append(rows)
        reached = [hours_to_reach(rows, level) for level in LEVELS]
        group = card.build_config.get("group")
        print(f"| {run.name} | {card.name}{' ' + group if group else ''} | {card.parameters:,} | {len(rows)} "
              f"| {rows[-1][2]:.2f} | {max(r[3] for r in rows):.4f} | "
              + " | ".join("-" if h is None else f"{h:.2f}" for h in reached) + " |")
    if png is None:
        return
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (by_lenses, by_hours) = plt.subplots(1, 2, figsize=(11, 4.2), dpi=110, sharey=True)
    for run, card, rows in zip(folders, cards, curves, strict=True):
        group = card.build_config.get("group")
        label = f"{run.name}: {card.name}{' ' + group if group else ''}, {card.parameters:,} parameters"
        by_lenses.plot([r[1] / 1000 for r in rows], [r[3] for r in rows], "o-", ms=3, label=label)
        by_hours.plot([r[2] for r in rows], [r[3] for r in rows], "o-", ms=3, label=label)
    for ax in (by_lenses, by_hours):
        ax.axhline(0.95, color="grey", ls=":", lw=1, label="goal: 0.95 accuracy")
        ax.set_ylim(0.85, 0.97)
        ax.grid(alpha=0.3)
    by_lenses.set_xlabel("lenses seen (thousands)")
    by_hours.set_xlabel("wall hours on the shared 2-core CPU (training + validation)")
    by_lenses.set_ylabel("validation accuracy (1500 lenses)")
    by_hours.legend(loc="lower right", fontsize=7)
    fig.suptitle("Validation accuracy of fresh-lens campaigns (Model I, native 81 px crop)")
    fig.tight_layout()
    png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(png)
    print(f"wrote {png}")


def describe_input(card: ModelCard) -> str:
    crop = card.input.crop
    return f"native {crop} px crop" if crop else f"150 px frame resized to {card.input.image_size} px"


def runs(folders: list[Path]) -> None:
    print("| input | model px | images seen | wall min | epochs (best) | val acc | test acc | test macro AUC "
          "| test n |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for run in folders:
        card, best = latest_card(run), best_card(run)
        training = card.training
        test = best.metrics.get("test") or {}
        val = best.metrics["val"]
        minutes = float(training.get("wall_time_s") or training["train_time_s"]) / 60
        print(f"| {describe_input(card)} | {card.input.image_size} | {training['images_seen']:,} | {minutes:.1f} "
              f"| {training['epochs_done']} ({best.training['best_epoch']}) | {val['accuracy']:.4f} "
              f"| {test.get('accuracy', float('nan')):.4f} | {test.get('auc_macro', float('nan')):.4f} "
              f"| {test.get('n', '-')} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    c = sub.add_parser("curve")
    c.add_argument("run", type=Path)
    c.add_argument("--png", type=Path, default=None)
    r = sub.add_parser("runs")
    r.add_argument("folders", type=Path, nargs="+")
    m = sub.add_parser("compare")
    m.add_argument("folders", type=Path, nargs="+")
    m.add_argument("--png", type=Path, default=None)
    args = parser.parse_args()
    if args.command == "curve":
        curve(args.run, args.png)
    elif args.command == "compare":
        compare(args.folders, args.png)
    else:
        runs(args.folders)


if __name__ == "__main__":
    main()
