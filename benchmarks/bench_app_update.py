"""Server-side time of one slider move on the Explore page (goal: 150 ms on 2 CPU cores).

Two figures:
1. the page: the Explore script rerun after the rotation slider moves, through Streamlit's
   AppTest (the whole page: AppTest cannot rerun the fragment alone, so this is an upper bound
   of the fragment's work; it includes building every element and composing the PNG grids);
2. the model work inside it (``app.compute.move``: cached orbit lookup, one inspected forward,
   the upright forward) and one attribution, cold and cached.

    python benchmarks/bench_app_update.py                        # eqcvt at 129x129, Grad-CAM
    python benchmarks/bench_app_update.py --model gcnn --size 65 --moves 5
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="eqcvt")
    p.add_argument("--group", default="C4")
    p.add_argument("--size", type=int, default=129)
    p.add_argument("--moves", type=int, default=10, help="slider positions timed (each a new angle)")
    p.add_argument("--method", default="gradcam", help="attribution shown on the page")
    p.add_argument("--view", default="Attributions", choices=("Attention", "Group channels", "Attributions"),
                   help="the Explore view open while the slider moves")
    p.add_argument("--threads", type=int, default=2)
    return p.parse_args()


def summary(label: str, seconds: list[float]) -> str:
    ms = [s * 1e3 for s in seconds]
    return (f"{label:<40} median {statistics.median(ms):8.1f} ms   min {min(ms):8.1f}   max {max(ms):8.1f}"
            f"   (n={len(ms)})")


def main() -> int:
    args = parse_args()
    os.environ["EQLENS_APP_IMAGE_SIZE"] = str(args.size)
    os.environ.setdefault("STREAMLIT_SERVER_FILE_WATCHER_TYPE", "none")
    import torch

    torch.set_num_threads(args.threads)
    from streamlit.testing.v1 import AppTest

    from app import catalog, compute, lenses
    from eqlens.models import names

    if args.model not in names():
        print(f"model {args.model!r} is not registered (known: {', '.join(names())})", file=sys.stderr)
        return 2
    lens = lenses.simulate("model_i", 1, 0)
    key = catalog.untrained_key(args.model, args.group)
    angles = [(17.0 + 37.0 * i) % 360 for i in range(args.moves)]

    # 2. the model work, outside Streamlit
    loaded = catalog.load(key)
    x = lenses.prepared(lens, loaded.image_size)
    compute.move(loaded, x, 0.0, lens_digest=lens.digest)  # build caches: orbit, kernels
    moves, cold, cached = [], [], []
    for a in angles:
        t = time.perf_counter()
        now = compute.move(loaded, x, a, lens_digest=lens.digest, attention=args.view == "Attention",
                           upright=args.view == "Group channels")
        moves.append(time.perf_counter() - t)
        target = int(now.inspection.logits.argmax())
        for bucket in (cold, cached):
            t = time.perf_counter()
            compute.attribution_at(loaded, lens.digest, now.x_rot, a, args.method, target)
            bucket.append(time.perf_counter() - t)

    # 1. the page
    at = AppTest.from_file(str(ROOT / "app" / "main.py"), default_timeout=600)
    at.session_state["explore_pinned_lens"] = lens
    at.session_state["explore_model"] = key
    at.session_state["explore_attr_method"] = args.method
    at.session_state["explore_view"] = args.view
    at.run()
    if at.exception:
        print(at.exception[0].message, file=sys.stderr)
        return 1
    page_cold, page_warm = [], []
    page_angles = [a + 1.0 for a in angles]  # angles the attribution cache has not seen yet
    for bucket in (page_cold, page_warm):  # second pass: orbit and attributions cached at every angle
        for a in page_angles:
            t = time.perf_counter()
            at.slider(key="explore_angle").set_value(a).run()
            bucket.append(time.perf_counter() - t)
    shown = [m.value for m in at.markdown if "prediction" in m.value]

    print(f"{args.model} {args.group} at {args.size}x{args.size}, view {args.view}, {torch.get_num_threads()} threads, "
          f"device {loaded.model.__class__.__name__} on {next(loaded.model.parameters()).device}; "
          f"{len(angles)} slider positions")
    print(summary("model work (compute.move)", moves))
    print(summary(f"{args.method}, first time at an angle", cold))
    print(summary(f"{args.method}, cached", cached))
    print(summary("page rerun, attribution computed", page_cold))
    print(summary("page rerun, attribution cached", page_warm))
    print("last prediction shown:", shown[-1] if shown else "-")
    goal = statistics.median(page_warm) * 1e3
    print(f"slider update (page, cached attribution): {goal:.0f} ms  (goal 150 ms on 2 cores)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
