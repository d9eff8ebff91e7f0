"""``eqlens detectability``: the ideal observer's distance D of simulated CDM lenses from their closest
alternative scenes, and a classifier's accuracy against it (eqlens.analysis.detectability; docs/benchmarks.md)."""

from __future__ import annotations

import math

SHARE_BELOW = (5.0, 7.0, 10.0)


def register(subparsers) -> None:
    from . import argtypes as arg

    p = subparsers.add_parser("detectability", help="ideal-observer distance D of CDM lenses from their closest "
                              "smooth and axion alternatives; a checkpoint's accuracy against D")
    p.add_argument("--checkpoint", default=None, help="score this checkpoint on the same lenses (its card gives "
                   "the config and the crop)")
    p.add_argument("--config", default="model_i", help="simulation config without --checkpoint")
    p.add_argument("--lenses", type=arg.POSITIVE, default=150, help="CDM lenses searched")
    p.add_argument("--stream", type=arg.COUNT, default=23, help="folder stream of the lenses (a simulator seed no "
                   "training, validation or test split uses)")
    p.add_argument("--crop", type=arg.CROP, default=None, help="disk of this central crop (default: the card's, "
                   "else 81)")
    p.add_argument("--other-classes", type=arg.COUNT, default=300, help="lenses of each other class the checkpoint "
                   "is scored on, for the ceiling")
    p.add_argument("--grid-angles", type=arg.POSITIVE, default=12)
    p.add_argument("--grid-masses", type=arg.POSITIVE, default=6)
    p.add_argument("--evaluations", type=arg.POSITIVE, default=200, help="Nelder-Mead evaluations of the axion fit "
                   "(the smooth fits take 0.4x, the theta_E refits 0.6x)")
    p.add_argument("--threads", type=arg.THREADS, default=1)
    p.add_argument("--json", default=None, help="write the per-lens results here (updated as lenses finish)")
    p.add_argument("--markdown", default=None, help="write the tables here")
    p.set_defaults(func=run)


def run(args) -> int:
    import torch

    from ..analysis.detectability import SearchBudget, detectability_of_lenses
    from ..data.simulated import folder_stream_seed
    from ..errors import EqlensError
    from ..simulation import SUBSTRUCTURE, get_config
    from .reporting import emit_report

    torch.set_num_threads(args.threads)
    model = card = None
    if args.checkpoint:
        from ..checkpoint import load_checkpoint
        from ..experiments.generalisation import training_config

        model, card = load_checkpoint(args.checkpoint, device="cpu")
        config = training_config(card.data)
        crop = args.crop or card.input.crop
    else:
        config = get_config(args.config)
        crop = args.crop or 81
    crop = min(crop, config.image_size) if crop else None
    cdm = [i for i, c in enumerate(config.class_names) if SUBSTRUCTURE[c] == "subhalos"]
    if not cdm:
        raise EqlensError(f"{config.name} has no class with subhalos")
    k = config.num_classes
    seed = folder_stream_seed(args.stream)
    indices = [k * j + cdm[0] for j in range(args.lenses)]
    e = args.evaluations
    budget = SearchBudget(grid_angles=args.grid_angles, grid_log10_masses=args.grid_masses, ax_evaluations=e,
                          nosub_evaluations=max(4, round(0.4 * e)), theta_evaluations=max(4, round(0.6 * e)))
    report = {"settings": {"config": config.name, "checkpoint": args.checkpoint, "crop": crop,
                           "stream": f"folder stream {args.stream} (simulator seed 3*2**61+{args.stream}): no lens "
                                     "of any training, validation or test split",
                           "lenses": args.lenses, "budget": budget.__dict__, "renders_per_lens_max": budget.renders(),
                           "threads": args.threads},
              "lenses": [], "classes": {}}
    correct = None
    if model is not None:
        correct, report["classes"] = _score_checkpoint(model, card, config, seed, indices, args.other_classes)
    print(f"searching {args.lenses} {config.class_names[cdm[0]]} lenses of {config.name} "
          f"(disk of the central {crop} px; at most {budget.renders()} renders each; {args.threads} thread(s))")

    def on_lens(row):
        if correct is not None:
            row["correct"] = bool(correct[len(report["lenses"])])
        report["lenses"].append(row)
        done = len(report["lenses"])
        print(f"  {done}/{args.lenses}: D_sub {row['D_sub']:.2f}, D_nosub_theta_E {row['D_nosub_theta_E']:.2f}, "
              f"D_ax {row['D_ax']:.2f} ({row['seconds']:.1f} CPU s)", flush=True)
        if args.json and (done % 10 == 0):
            _write(args.json, report)

    detectability_of_lenses(config, seed, indices, crop=crop, budget=budget, on_lens=on_lens)
    text = markdown_summary(report)
    emit_report(text, report, args.json, args.markdown)
    return 0


def _write(path, report) -> None:
    from ..core.jsonio import write_json

    write_json(path, report)


def _score_checkpoint(model, card, config, seed, indices, others: int):
    """Per-lens correctness of the checkpoint on the noisy CDM images ``indices``, and its accuracy on
    ``others`` lenses of every other class of the same stream: ``(correct, {class: {"n", "accuracy"}})``."""
    from ..checkpoint import predict
    from ..simulation import LensSimulator

    sim = LensSimulator(config)
    k = config.num_classes

    def calls(idx):
        out = []
        for start in range(0, len(idx), 64):
            part = idx[start:start + 64]
            batch = sim.simulate(seed, part)
            probs = predict(model, card, batch.images, batch_size=64).values
            out += (probs.argmax(-1) == batch.labels).tolist()
        return out

    correct = calls(indices)
    classes = {config.class_names[indices[0] % k]: {"n": len(correct), "accuracy": sum(correct) / len(correct)}}
    for c in range(k):
        if c == indices[0] % k or others == 0:
            continue
        right = calls([k * j + c for j in range(others)])
        classes[config.class_names[c]] = {"n": len(right), "accuracy": sum(right) / len(right)}
    return correct, classes


def markdown_summary(report: dict) -> str:
    """Quantiles of each D, the share of lenses under thresholds, the checkpoint's error rate by D_ax and the
    ceiling (when a checkpoint was scored)."""
    import numpy as np

    from ..analysis.detectability import ceiling_estimate, error_rate_by_distance

    rows, s = report["lenses"], report["settings"]
    names = [n for n in ("D_sub", "D_nosub", "D_nosub_theta_E", "D_ax", "D_ax_theta_E")
             if rows and not math.isnan(rows[0][n])]
    lines = [f"{len(rows)} lenses of {s['config']}, {s['stream']}; disk of the central {s['crop']} px; at most "
             f"{s['renders_per_lens_max']} renders per lens; {s['threads']} thread(s).", "",
             "| D | min | 5 % | median | 95 % | " + " | ".join(f"share < {t:g}" for t in SHARE_BELOW) + " |",
             "|---|---:|---:|---:|---:|" + "---:|" * len(SHARE_BELOW)]
    for n in names:
        d = np.array([r[n] for r in rows])
        q = np.quantile(d, [0.05, 0.5, 0.95])
        shares = " | ".join(f"{(d < t).mean():.3f}" for t in SHARE_BELOW)
        lines.append(f"| {n} | {d.min():.2f} | {q[0]:.2f} | {q[1]:.2f} | {q[2]:.2f} | {shares} |")
    seconds = [r["seconds"] for r in rows]
    if seconds:
        renders = np.mean([r["renders"] for r in rows])
        lines += ["", f"Cost: {np.mean(seconds):.1f} CPU s per lens on average ({renders:.0f} renders)."]
    if rows and "correct" in rows[0]:
        bins = error_rate_by_distance([r["D_ax"] for r in rows], [r["correct"] for r in rows])
        lines += ["", f"Error rate of {s['checkpoint']} on these lenses by D_ax (binomial s.e.):", "",
                  "| D_ax | " + " | ".join(_bin(b) for b in bins) + " |", "|---|" + "---:|" * len(bins),
                  "| lenses | " + " | ".join(str(b["n"]) for b in bins) + " |",
                  "| error rate | " + " | ".join("" if not b["n"] else f"{b['error_rate']:.2f} ± {b['se']:.2f}"
                                                 for b in bins) + " |"]
        others = [v["accuracy"] for c, v in report["classes"].items() if c != rows[0]["label"]]
        ceiling = ceiling_estimate([r["D_ax"] for r in rows], others)
        model_acc = np.mean([v["accuracy"] for v in report["classes"].values()])
        lines += ["", "Accuracy per class on this stream: " + ", ".join(
            f"{c} {v['accuracy']:.3f} (n {v['n']})" for c, v in report["classes"].items()) +
            f"; balanced {model_acc:.3f}.",
            f"Estimated ceiling: {ceiling['ceiling']:.3f} ± {ceiling['ceiling_se']:.3f} (CDM lenses below D_ax 7 "
            f"lost, half of those in 7-10: CDM part {ceiling['cdm_ceiling']:.3f} ± {ceiling['cdm_se']:.3f}; the "
            "other classes at the checkpoint's own accuracy)."]
        report["ceiling"] = ceiling
    return "\n".join(lines) + "\n"


def _bin(b: dict) -> str:
    if b["lo"] == 0:
        return f"< {b['hi']:g}"
    return f"> {b['lo']:g}" if math.isinf(b["hi"]) else f"{b['lo']:g}-{b['hi']:g}"
