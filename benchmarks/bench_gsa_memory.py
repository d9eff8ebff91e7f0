"""Peak memory and time of one forward+backward of GSA-Net and of one group self-attention layer.

    python benchmarks/bench_gsa_memory.py                      # 64x64, batch 8, C4 and C8, model and layer
    python benchmarks/bench_gsa_memory.py --size 17 --batch 2  # a quick check that it runs

Two targets per group: ``model`` (the registered ``gsa`` on ``[B, 1, S, S]`` images; its stem cuts
S=64 to 22x22 tokens) and ``layer`` (one local group self-attention layer on ``[B, C, |G|, S, S]``
fields at full resolution, the setting in which the official GSA-Nets layers need 41 GiB for p4
with 9x9 windows and run out of memory for p8). Each is run with and without activation
checkpointing of the per-element attention chunks.

Peak memory of a warm step above what was allocated before it (parameters and inputs; gradient
buffers are freed first, so they count): ``torch.cuda.max_memory_allocated`` on CUDA, live CPU
tensor bytes tracked by ``torch.profiler(profile_memory=True)`` on CPU. Times are of a warm step
(without the profiler).
"""

from __future__ import annotations

import argparse
import time

import torch
from torch.profiler import ProfilerActivity, profile

import eqlens.models.gsa  # noqa: F401  (registers "gsa" even before eqlens.models imports it)
from eqlens.groups import get_group
from eqlens.models import count_parameters, create
from eqlens.models.gsa_layers import GroupSelfAttention


def build(config: dict, device: torch.device):
    """``(module, input)`` for one configuration."""
    torch.manual_seed(0)
    if config["target"] == "model":
        module = create("gsa", num_classes=3, group=config["group"], image_size=config["size"],
                        kernel_size=config["kernel"], use_checkpoint=config["checkpoint"])
        x = torch.rand(config["batch"], 1, config["size"], config["size"])
    else:
        group = get_group(config["group"])
        module = GroupSelfAttention(group, config["channels"], config["channels"], heads=config["heads"],
                                    kernel_size=config["kernel"], use_checkpoint=config["checkpoint"])
        x = torch.randn(config["batch"], config["channels"], group.order, config["size"], config["size"])
    return module.to(device).train(), x.to(device)


def step(module, x) -> None:
    module.zero_grad(set_to_none=True)
    out = module(x)
    out.float().square().mean().backward()


def cpu_peak_bytes(fn) -> int:
    """Peak bytes of live CPU tensors while ``fn()`` runs, above those alive before it.

    ``torch.profiler`` with ``profile_memory`` charges each allocation to the operator that made it
    (``self_cpu_memory_usage``) and each free to a ``[memory]`` event; their running sum in time
    order is the live tensor memory. Unlike the process RSS it ignores library loading and what the
    allocator keeps cached."""
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        fn()
    live = peak = 0
    for event in sorted(prof.events(), key=lambda e: e.time_range.start):
        live += event.cpu_memory_usage if event.name == "[memory]" else event.self_cpu_memory_usage
        peak = max(peak, live)
    return peak


def measure(config: dict) -> dict:
    """Parameters, seconds of a warm forward+backward, and its peak bytes above what was allocated
    before it (parameters and inputs); gradient buffers are freed first, so they count."""
    device = torch.device(config["device"])
    module, x = build(config, device)
    result = {"params": count_parameters(module)}
    step(module, x)  # warm-up: one-off costs (~3 s for torch.utils.checkpoint on first use)
    synchronize = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    synchronize()
    start = time.perf_counter()
    step(module, x)
    synchronize()
    result["seconds"] = time.perf_counter() - start
    module.zero_grad(set_to_none=True)
    if device.type == "cuda":
        before = torch.cuda.memory_allocated()
        torch.cuda.reset_peak_memory_stats()
        step(module, x)
        result["peak_bytes"] = torch.cuda.max_memory_allocated() - before
    else:
        result["peak_bytes"] = cpu_peak_bytes(lambda: step(module, x))
    return result


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--groups", nargs="+", default=["C4", "C8"])
    parser.add_argument("--targets", nargs="+", default=["model", "layer"], choices=["model", "layer"])
    parser.add_argument("--kernel", type=int, default=5, help="attention window (odd)")
    parser.add_argument("--channels", type=int, default=36, help="layer target: channels")
    parser.add_argument("--heads", type=int, default=9, help="layer target: heads (the official run used 9)")
    parser.add_argument("--checkpoint", choices=["both", "on", "off"], default="both",
                        help="activation checkpointing of the attention chunks")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args(argv)

    print(f"device {args.device}, batch {args.batch}, {args.size}x{args.size}, window {args.kernel}x{args.kernel}; "
          f"layer: {args.channels} channels, {args.heads} heads; one forward+backward")
    header = f"{'target':<6} {'group':<5} {'checkpoint':<10} {'params':>8} {'fwd+bwd s':>10} {'peak MiB':>10}"
    print(header + "\n" + "-" * len(header))
    for target in args.targets:
        for group in args.groups:
            for use_checkpoint in {"both": (True, False), "on": (True,), "off": (False,)}[args.checkpoint]:
                config = dict(target=target, group=group, size=args.size, batch=args.batch, kernel=args.kernel,
                              channels=args.channels, heads=args.heads, checkpoint=use_checkpoint,
                              device=args.device)
                try:
                    result = measure(config)
                except (RuntimeError, MemoryError) as error:  # out of memory: report it, go on
                    print(f"{target:<6} {group:<5} {use_checkpoint!s:<10} failed: {str(error).splitlines()[0]}")
                    if args.device.startswith("cuda"):
                        torch.cuda.empty_cache()
                    continue
                print(f"{target:<6} {group:<5} {use_checkpoint!s:<10} {result['params']:>8} "
                      f"{result['seconds']:>10.2f} {result['peak_bytes'] / 2**20:>10.1f}", flush=True)


if __name__ == "__main__":
    main()
