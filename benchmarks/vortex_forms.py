"""Line vs point-mass vortex: how far the two forms' images lie apart, and what it does to a classifier.

    OMP_NUM_THREADS=1 python benchmarks/vortex_forms.py [--lenses 200] [--test 600] [--checkpoint CKPT]

1. Renders the same axion scenes of ``model_i`` (noiseless, PSF on, float64; ``--supersampling S`` traces
   S x S rays per pixel instead of the recipe's one) with ``vortex_model="line"``
   (the closed-form uniform segment) and ``"points"`` (the recipe's 100 point masses) and prints the
   largest per-image difference as a fraction of that image's peak flux (max, mean, median over lenses).
2. Evaluates the checkpoint on the first ``--test`` lenses of its card's own test split rendered each way
   (same scenes, same noise keys) and prints both accuracies.
"""

from __future__ import annotations

import argparse
import dataclasses

import torch


def render_difference(n_lenses: int, supersampling: int = 1) -> dict:
    from eqlens.simulation import LensSimulator, get_config

    base = dataclasses.replace(get_config("model_i"), supersampling=supersampling)
    sims = {form: LensSimulator(dataclasses.replace(base, vortex_model=form), dtype=torch.float64)
            for form in ("line", "points")}
    axion = base.class_names.index("axion")
    fractions, lengths = [], []
    for start in range(0, n_lenses, 50):
        idx = list(range(start, min(start + 50, n_lenses)))
        labels = torch.full((len(idx),), axion)
        params = sims["line"].sample(0, idx, labels)
        line, points = (sims[f].render(params) for f in ("line", "points"))
        peak = line.flatten(1).amax(1)
        fractions.append((points - line).abs().flatten(1).amax(1) / peak)
        lengths.append(params.vortex_half_length)
    frac, half = torch.cat(fractions), torch.cat(lengths)
    worst = int(frac.argmax())
    q90, q99 = torch.quantile(frac, torch.tensor([0.9, 0.99], dtype=frac.dtype)).tolist()
    return {"n": len(frac), "max": float(frac.max()), "mean": float(frac.mean()), "median": float(frac.median()),
            "q90": q90, "q99": q99, "over_1_percent": int((frac > 0.01).sum()),
            "worst_half_length_arcsec": float(half[worst])}


def accuracies(checkpoint: str, n_test: int) -> dict:
    from eqlens.checkpoint import load_checkpoint
    from eqlens.data.simulated import SimulatedLensDataset
    from eqlens.evaluation.classification import evaluate_model
    from eqlens.simulation import get_config

    model, card = load_checkpoint(checkpoint)
    seed = int(card.data.get("data_seed", 0))
    out = {}
    for form in ("line", "points"):
        config = dataclasses.replace(get_config(card.data["spec"]), vortex_model=form)
        ds = SimulatedLensDataset(config, split="test", size=n_test, seed=seed, image_size=card.input.image_size,
                                  crop=card.input.crop)
        report = evaluate_model(model, ds, list(card.class_names), mask=card.input.circular_mask,
                                robustness_size=0, group=card.group)
        out[form] = {"accuracy": report["accuracy"], "auc_macro": report["auc_macro"],
                     "confusion": report["confusion"], "predicted": [r["predicted"] for r in report["predictions"]]}
    out["changed"] = sum(a != b for a, b in zip(out["line"]["predicted"], out["points"]["predicted"], strict=True))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--lenses", type=int, default=200)
    ap.add_argument("--test", type=int, default=600)
    ap.add_argument("--checkpoint", default="checkpoints/model_i_gcnn")
    ap.add_argument("--supersampling", type=int, default=1,
                    help="rays per pixel side for the render difference (the recipe: 1)")
    args = ap.parse_args()
    torch.set_num_threads(1)
    if args.lenses > 0:
        d = render_difference(args.lenses, args.supersampling)
        print(f"render difference over {d['n']} axion lenses of model_i, {args.supersampling}x{args.supersampling} "
              f"rays per pixel (max |points - line| / peak flux per "
              f"lens): max {d['max']:.2%}, 99th percentile {d['q99']:.2%}, 90th {d['q90']:.2%}, mean {d['mean']:.2%}, "
              f"median {d['median']:.3%}; {d['over_1_percent']} lenses over 1 % (worst at half-length "
              f"{d['worst_half_length_arcsec']:.3f}\")", flush=True)
    if args.test > 0:
        result = accuracies(args.checkpoint, args.test)
        for form in ("line", "points"):
            r = result[form]
            print(f"{args.checkpoint} on {args.test} test lenses, vortex {form}: accuracy {r['accuracy']:.4f}, "
                  f"macro AUC {r['auc_macro']:.4f}, confusion {r['confusion']}", flush=True)
        print(f"predictions that differ between the two forms: {result['changed']} of {args.test}", flush=True)


if __name__ == "__main__":
    main()
