"""Parameters, throughput and peak memory of every registered model, on the CPU and on CUDA.

    python benchmarks/bench_models.py                      # all models; writes docs/benchmarks_models.md
    python benchmarks/bench_models.py --quick              # tiny images, batch 2: proves it runs, prints only
    python benchmarks/bench_models.py --models gcnn,eqcvt_inv --device cuda

Per model: forward images/s (eval mode, no gradients) and forward+backward images/s (train mode,
cross-entropy, gradients of every parameter) at 129x129, batch 16 (GSA: 64x64, batch 8: its
attention memory grows as |G|^3), and the peak memory of one forward+backward step
(``torch.cuda.max_memory_allocated`` on CUDA; growth of the peak resident set on the CPU).
A model that fails (out of memory, say) gets a row saying so and the others still run.
"""

from __future__ import annotations

import argparse
import gc
import sys

import torch
import torch.nn.functional as F
from common import (
    devices,
    format_bytes,
    machine_description,
    markdown_table,
    peak_memory_bytes,
    report,
    seconds_per_call,
    write_report,
)

from eqlens import models

FULL_SIZE = (129, 16)  # (image side, batch)
SIZE_OVERRIDES = {"gsa": (64, 8)}  # |G|^3 attention: 129x129 does not fit in 80 GB at batch 16
QUICK_SIZE = (33, 2)
DEFAULT_OUTPUT = "docs/benchmarks_models.md"
HEADERS = ["model", "group", "device", "image", "batch", "parameters", "forward img/s", "fwd+bwd img/s",
           "peak memory (fwd+bwd)"]


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--models", default="all", help="comma-separated registry names, or 'all'")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"],
                   help="auto: the CPU, and CUDA when present")
    p.add_argument("--quick", action="store_true", help="tiny images and batch, one timed call: a smoke run")
    p.add_argument("--group", default="C4", help="group of the models that use one")
    p.add_argument("--num-classes", type=int, default=3)
    p.add_argument("--repeats", type=int, default=5, help="timed calls (the median is reported)")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    p.add_argument("--output", default=None,
                   help=f"markdown file to write (default {DEFAULT_OUTPUT}; a --quick run writes only if given)")
    return p.parse_args(argv)


def selected_models(choice: str) -> list[str]:
    if choice == "all":
        return models.names()
    chosen = [name.strip() for name in choice.split(",") if name.strip()]
    for name in chosen:
        models.spec(name)  # ValueError naming the known models
    return chosen


def image_and_batch(name: str, quick: bool) -> tuple[int, int]:
    size, batch = QUICK_SIZE if quick else SIZE_OVERRIDES.get(name, FULL_SIZE)
    return max(size, models.spec(name).min_image_size), batch


def bench_model(name: str, device: torch.device, args) -> list:
    """One table row for model ``name`` on ``device``."""
    size, batch = image_and_batch(name, args.quick)
    group = args.group if models.spec(name).uses_group else "-"
    row = [name, group, device.type, f"{size}x{size}", batch]
    torch.manual_seed(0)
    model = models.create(name, num_classes=args.num_classes, group=args.group, image_size=size).to(device)
    x = torch.rand(batch, 1, size, size, device=device)
    y = torch.randint(0, args.num_classes, (batch,), device=device)

    def forward():
        with torch.no_grad():
            model(x)

    def train_step():
        model.zero_grad(set_to_none=True)
        F.cross_entropy(model(x), y).backward()

    warmup, repeats = (1, 1) if args.quick else (2, args.repeats)
    # Peak first: later calls reuse memory the allocator already holds, and the CPU counter sees only growth.
    model.train()
    peak = peak_memory_bytes(train_step, device)
    step = seconds_per_call(train_step, device, warmup=warmup, repeats=repeats)
    model.eval()
    fwd = seconds_per_call(forward, device, warmup=warmup, repeats=repeats)
    return row + [models.count_parameters(model), batch / fwd, batch / step, format_bytes(peak)]


def run(args, argv: list[str]) -> str:
    if args.threads:
        torch.set_num_threads(args.threads)
    names = selected_models(args.models)
    sections = []
    for device in devices(args.device):
        rows = []
        for name in names:
            try:
                rows.append(bench_model(name, device, args))
            except (RuntimeError, ValueError) as exc:  # torch.OutOfMemoryError is a RuntimeError
                size, batch = image_and_batch(name, args.quick)
                reason = str(exc).splitlines()[0][:80]
                failed = [name, args.group, device.type, f"{size}x{size}", batch, "-", "-", "-", f"failed: {reason}"]
                rows.append(failed)
            finally:
                gc.collect()
                if device.type == "cuda":
                    torch.cuda.empty_cache()
            print(markdown_table(HEADERS, rows[-1:]).splitlines()[-1], flush=True)
        machine = machine_description(device)
        sections.append(f"## {device.type}\n\nMachine: {machine}\n\n{markdown_table(HEADERS, rows)}")
    title = "Model benchmarks" + (" (quick smoke run: tiny images, not representative)" if args.quick else "")
    notes = [
        "forward: eval mode, no gradients; fwd+bwd: train mode, cross-entropy, backward through every parameter.",
        "img/s from the median of the timed calls; peak memory of one fwd+bwd step "
        "(CUDA: max_memory_allocated, weights included; CPU: growth of the peak resident set, weights excluded).",
        f"command: python benchmarks/bench_models.py {' '.join(argv)}".rstrip(),
    ]
    return report(title, sections, notes)


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parse_args(argv)
    text = run(args, argv)
    print()
    print(text)
    output = args.output or (None if args.quick else DEFAULT_OUTPUT)
    if output:
        print(f"written to {write_report(output, text)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
