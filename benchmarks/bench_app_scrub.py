"""The orbit scrubbed in the browser (Explore): precompute time on the server and drag latency in Chromium.

Two figures (issue 15's goals: <= 2 s to precompute an orbit of the flagship-sized gcnn on 2 cores,
first frames within 0.5 s; <= 50 ms median from a slider input event to every panel painted; issue 25's:
every view's whole orbit of the flagship in <= 3 s wall on the quiet 2-core machine, no attribution above
5x the CPU of the group-channel orbit):

1. precompute: ``app.compute.ScrubOrbit`` filled batch by batch (coarse to fine) for each view and every
   attribution method, in this process with ``--threads`` torch threads: the first batch (the exact angles
   and every 45 deg: the first frames), every frame there (Integrated Gradients: before its refinement),
   the whole orbit, its process CPU seconds (``time.process_time``, the figure to compare on a loaded
   machine) beside the wall seconds and the 1-minute load average at the end of each row, the CPU ratio to
   the group-channel orbit, and the payload handed to the browser (JSON bytes);
2. latency: the app served by ``streamlit run``, driven by Debian's Chromium through Playwright.
   The mouse drags the scrubber's slider across the orbit and back (one move per ~16 ms, as a hand
   makes them); the component records, for each ``input`` event, the time from the event to the
   frame after its drawing (a ``requestAnimationFrame`` then a task: every panel painted). Also
   from a click on another view to its first frames and to the whole orbit in the browser.

    python benchmarks/bench_app_scrub.py                          # untrained gcnn C4 at 81 px
    python benchmarks/bench_app_scrub.py --checkpoint model_i_gcnn --drags 4
    python benchmarks/bench_app_scrub.py --skip-browser --model eqcvt --views Attention
    python benchmarks/bench_app_scrub.py --checkpoint model_i_flagship --skip-browser --threads 1  # benchmarks_app.md
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

VIEWS = ("Attention", "Group channels", "Attributions")
SCRUB_DOC = ("() => { const f = [...document.querySelectorAll('iframe')].find(f => f.src.includes('scrub'));"
             " const d = f && f.contentDocument && f.contentDocument.body ? f.contentDocument : null; ")


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="gcnn", help="an untrained registry model (ignored with --checkpoint)")
    p.add_argument("--group", default="C4")
    p.add_argument("--size", type=int, default=81, help="input size of the untrained model")
    p.add_argument("--checkpoint", default=None, help="a folder name in checkpoints/ instead of an untrained model")
    p.add_argument("--views", nargs="*", default=None, help="views to time (default: every view the model has)")
    p.add_argument("--methods", nargs="*", default=None, help="attributions to time (default: every method)")
    p.add_argument("--repeats", type=int, default=3, help="precomputes per view (median reported)")
    p.add_argument("--drags", type=int, default=3, help="drags across the orbit and back, per view")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--skip-browser", action="store_true")
    p.add_argument("--json", default=None, help="also write the results here")
    return p.parse_args()


def model_key(args) -> str:
    from app import catalog

    if args.checkpoint:
        return f"ckpt:{ROOT / 'checkpoints' / args.checkpoint}"
    return catalog.untrained_key(args.model, args.group)


def specs(loaded, args):
    """The views timed, as the page builds them by default."""
    from app import compute

    views = args.views or compute.available_views(loaded)
    out = []
    for view in views:
        if view == "Group channels":
            tap = next(n for n, t in loaded.model.taps().items() if t.kind == "group")
            out.append(compute.ScrubView(view, tap=tap, field=0))
        elif view == "Attention":
            size = loaded.image_size
            block = next(iter(loaded.model.attention_modules()))
            out.append(compute.ScrubView(view, block=block, row=size // 2, col=min(size - 1, size // 2 + size // 5)))
        else:
            spatial = [n for n, t in loaded.model.taps().items() if t.kind != "features"]
            from eqlens.analysis.attribution import METHODS

            for method in args.methods or list(METHODS):
                out.append(compute.ScrubView(view, method=method, layer=spatial[-1] if method == "gradcam" else None))
    return out


def precompute(args) -> list[dict]:
    import torch

    torch.set_num_threads(args.threads)
    from app import catalog, compute, lenses

    loaded = catalog.load(model_key(args))
    lens = lenses.simulate("model_i", 0, 0)
    x = lenses.prepared(lens, loaded.image_size, loaded.crop)
    params = sum(p.numel() for p in loaded.model.parameters())
    print(f"model {loaded.label}: {params} parameters, {loaded.image_size} px, {args.threads} threads, "
          f"load average {os.getloadavg()[0]:.2f}")
    rows = []
    for spec in specs(loaded, args):
        first, full, total, cpu = [], [], [], []
        for _ in range(args.repeats):
            orbit = compute.ScrubOrbit(loaded, x, spec)
            c0 = time.process_time()
            while not orbit.step():
                pass
            cpu.append(time.process_time() - c0)
            first.append(orbit.first_seconds)
            full.append(orbit.full_seconds or orbit.seconds)
            total.append(orbit.seconds)
            if orbit.error:
                raise SystemExit(f"{spec}: {orbit.error}")
        payload = len(json.dumps(orbit.payload()))
        label = spec.kind + (f" ({spec.method})" if spec.kind == "Attributions" else "")
        errors = [e for e in getattr(orbit, "completeness", []) if e is not None]
        steps = [n for n in getattr(orbit, "steps", []) if n is not None]
        row = dict(view=label, frames=len(orbit.angles), batches=len(orbit.batches),
                   first_s=statistics.median(first), every_frame_s=statistics.median(full),
                   total_s=statistics.median(total), cpu_s=statistics.median(cpu), payload_mb=payload / 1e6,
                   load_average=os.getloadavg()[0], quarter_turns=getattr(orbit, "quarter", None),
                   ig_steps=[min(steps), max(steps)] if steps else None,
                   completeness_max=max(errors) if errors else None,
                   completeness_median=statistics.median(errors) if errors else None)
        rows.append(row)
        extra = (f"; IG steps {row['ig_steps']}, completeness error max {row['completeness_max']:.3f} median "
                 f"{row['completeness_median']:.3f}" if errors else "")
        print(f"  {label:<36} {row['frames']} frames: first frames {row['first_s']:.2f} s, every frame "
              f"{row['every_frame_s']:.2f} s, whole orbit {row['total_s']:.2f} s wall (process CPU {row['cpu_s']:.2f} s"
              f", load average {row['load_average']:.1f}), payload {row['payload_mb']:.2f} MB, quarter turns "
              f"{row['quarter_turns']}{extra}", flush=True)
    reference = next((r["cpu_s"] for r in rows if r["view"] == "Group channels"), None)
    for row in rows:
        row["cpu_ratio_to_group_channels"] = row["cpu_s"] / reference if reference else None
    if reference:
        print("  CPU / group channels: " + ", ".join(f"{r['view']} {r['cpu_ratio_to_group_channels']:.1f}x"
                                                   for r in rows))
    return rows


def browser(args) -> list[dict]:
    from playwright.sync_api import sync_playwright

    from app import catalog
    from app.serve import CHROMIUM, CHROMIUM_ARGS, running_app, wait_idle

    env = {"OMP_NUM_THREADS": str(args.threads), "EQLENS_APP_IMAGE_SIZE": str(args.size),
           "EQLENS_CHECKPOINT_DIR": str(ROOT / "checkpoints") if args.checkpoint else tempfile.mkdtemp()}
    loaded = catalog.load(model_key(args))
    label = f"{args.checkpoint} (checkpoint)" if args.checkpoint else f"{args.model} (untrained)"
    views = [s.kind for s in specs(loaded, args)]
    views = list(dict.fromkeys(v for v in views if v != "Attributions")) + (["Attributions"]
                                                                           if "Attributions" in views else [])
    rows = []
    with running_app(env) as url, sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = chromium.new_page(viewport={"width": 1500, "height": 1200})
        page.set_default_timeout(600_000)
        page.goto(url)
        wait_idle(page)
        if page.locator(".st-key-explore_model").inner_text().find(label) < 0:
            page.locator(".st-key-explore_model").click()
            page.get_by_role("option", name=label, exact=True).click()
            wait_idle(page)
        for view in views:
            page.wait_for_function(SCRUB_DOC + "return d && d.body.dataset.complete === 'true'; }", polling=10)
            switch = None
            shown = page.evaluate(SCRUB_DOC + "return d.body.dataset.view; }")
            if shown != view:
                switch = time.perf_counter()
                page.locator(".st-key-explore_view").get_by_text(view, exact=True).click()
            # The iframe may be mounted again while the orbit fills: wait from the page, then take the frame.
            first_ms = whole_ms = None
            if switch is not None:  # time to the first frames and to the whole orbit, in the browser
                page.wait_for_function(SCRUB_DOC + f"return d && d.body.dataset.view === '{view}'"
                                       " && Number(d.body.dataset.frames || 0) > 0; }", polling=5)
                first_ms = (time.perf_counter() - switch) * 1e3
            page.wait_for_function(SCRUB_DOC + f"return d && d.body.dataset.view === '{view}'"
                                   " && d.body.dataset.complete === 'true'; }", polling=10)
            if switch is not None:
                whole_ms = (time.perf_counter() - switch) * 1e3
            wait_idle(page)
            frame = next(f for f in page.frames if "scrub" in f.url)
            frame.evaluate("() => { window.scrubTimings.length = 0; }")
            box = frame.locator("#slider").bounding_box()
            y = box["y"] + box["height"] / 2
            x0, x1 = box["x"] + 2, box["x"] + box["width"] - 2
            page.mouse.move(x0, y)
            page.mouse.down()
            for _ in range(args.drags):
                for a, b in ((x0, x1), (x1, x0)):
                    for k in range(1, 91):
                        page.mouse.move(a + (b - a) * k / 90, y)
                        page.wait_for_timeout(16)
            page.mouse.up()
            page.wait_for_timeout(200)
            timings = frame.evaluate("() => window.scrubTimings.slice()")
            ms = sorted(timings)
            row = dict(view=view, events=len(ms), median_ms=statistics.median(ms), p90_ms=ms[int(0.9 * (len(ms) - 1))],
                       max_ms=ms[-1], first_frames_ms=first_ms, whole_orbit_ms=whole_ms)
            rows.append(row)
            extra = ("" if switch is None
                     else f"; view switch to first frames {first_ms:.0f} ms, to all {whole_ms:.0f} ms")
            print(f"  {view:<16} {len(ms)} input events: input -> painted median {row['median_ms']:.1f} ms, "
                  f"p90 {row['p90_ms']:.1f}, max {row['max_ms']:.1f}{extra}", flush=True)
            page.screenshot(path=str(Path(tempfile.gettempdir()) / f"bench_scrub_{view.replace(' ', '_')}.png"))
        chromium.close()
    return rows


def main() -> int:
    args = parse_args()
    os.environ["EQLENS_APP_IMAGE_SIZE"] = str(args.size)
    os.environ.setdefault("STREAMLIT_SERVER_FILE_WATCHER_TYPE", "none")
    results = {"precompute": precompute(args), "load_average": os.getloadavg()[0]}
    if not args.skip_browser:
        results["browser"] = browser(args)
    results["load_average_after"] = os.getloadavg()[0]
    print(f"load average (1 min) at the end: {results['load_average_after']:.2f} on {os.cpu_count()} cores")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
