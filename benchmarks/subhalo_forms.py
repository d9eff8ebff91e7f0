"""Point-mass vs truncated-NFW subhalos: how far the two forms' images lie apart, and what each costs.

    OMP_NUM_THREADS=1 python benchmarks/subhalo_forms.py [--lenses 100] [--timing-batches 6]

1. Renders the same cdm scenes (noiseless, PSF on, float64) with ``model_i`` (the recipe's 25 point masses)
   and ``model_i_tnfw`` (truncated NFWs of the same masses and places) and prints, per lens, the mean and the
   largest |tnfw - points| as a fraction of the point-mass image's peak flux (mean, median, max over lenses).
2. CPU ms per image (``time.process_time``, 1 thread, float32, noise included, batches of 16) of each config
   on cdm-only batches and on the usual class mix (index % 3).
"""

from __future__ import annotations

import argparse
import time

import torch


def render_difference(n_lenses: int) -> dict:
    from eqlens.simulation import LensSimulator, get_config

    sims = {name: LensSimulator(get_config(name), dtype=torch.float64) for name in ("model_i", "model_i_tnfw")}
    cdm = get_config("model_i").class_names.index("cdm")
    mean_fracs, max_fracs = [], []
    for start in range(0, n_lenses, 25):
        idx = list(range(start, min(start + 25, n_lenses)))
        params = sims["model_i"].sample(0, idx, torch.full((len(idx),), cdm))
        points, tnfw = (sims[name].render(params) for name in ("model_i", "model_i_tnfw"))
        peak = points.flatten(1).amax(1)
        diff = (tnfw - points).abs().flatten(1)
        mean_fracs.append(diff.mean(1) / peak)
        max_fracs.append(diff.amax(1) / peak)
    mean_frac, max_frac = torch.cat(mean_fracs), torch.cat(max_fracs)
    return {"n": len(mean_frac), "mean_of_mean": float(mean_frac.mean()), "median_of_mean": float(mean_frac.median()),
            "max_of_mean": float(mean_frac.max()), "mean_of_max": float(max_frac.mean()),
            "median_of_max": float(max_frac.median()), "max_of_max": float(max_frac.max())}


def ms_per_image(name: str, cdm_only: bool, batches: int, batch_size: int = 16) -> float:
    from eqlens.simulation import LensSimulator, get_config

    sim = LensSimulator(get_config(name))
    labels = torch.full((batch_size,), sim.class_names.index("cdm")) if cdm_only else None
    sim.simulate(0, range(batch_size), labels)  # warm-up
    start = time.process_time()
    for b in range(batches):
        sim.simulate(1, range(b * batch_size, (b + 1) * batch_size), labels)
    return (time.process_time() - start) / (batches * batch_size) * 1000


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--lenses", type=int, default=100)
    ap.add_argument("--timing-batches", type=int, default=6)
    args = ap.parse_args()
    torch.set_num_threads(1)
    if args.lenses > 0:
        d = render_difference(args.lenses)
        print(f"render difference over {d['n']} cdm lenses (|model_i_tnfw - model_i| / peak flux of the point-mass "
              f"image): per-lens mean difference: mean {d['mean_of_mean']:.3%}, median {d['median_of_mean']:.3%}, "
              f"max {d['max_of_mean']:.3%}; per-lens largest pixel difference: mean {d['mean_of_max']:.2%}, "
              f"median {d['median_of_max']:.2%}, max {d['max_of_max']:.2%}", flush=True)
    if args.timing_batches > 0:
        for cdm_only in (True, False):
            what = "cdm only" if cdm_only else "class mix"
            times = {name: ms_per_image(name, cdm_only, args.timing_batches) for name in ("model_i", "model_i_tnfw")}
            print(f"CPU ms per image, {what}, float32, 1 thread, batches of 16: "
                  + ", ".join(f"{k} {v:.1f}" for k, v in times.items()), flush=True)


if __name__ == "__main__":
    main()
