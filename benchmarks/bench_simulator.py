"""Simulator throughput: images/s at 150 x 150, CDM scenes (SIE + shear + 25 point-mass subhalos +
Sersic source + PSF + noise), printed as a markdown table with the machine.

    python benchmarks/bench_simulator.py                 # CPU (2 processes x 1 thread) and CUDA if present
    python benchmarks/bench_simulator.py --quick         # tiny sizes: proves the script runs

CPU: each worker process sets torch.set_num_threads(1) and simulates batches of --cpu-batch images
(8-16 stay in cache); the total rate is the sum over workers running at the same time. Each worker
also reports its CPU time per image (``time.process_time``), which other load on the machine
distorts far less than the wall-clock rate; a single-process row gives the per-image stage costs.
CUDA: batch sizes 256..4096, eager and torch.compile (compilation excluded from the timing, one
warm-up call; a compiled simulator recompiles per batch size).
"full" = sample + render + noise + truth (``simulate``); "render" = noiseless image of pre-sampled
parameters. lenstronomy is timed on the same scene only if it is importable (never a dependency).
"""

from __future__ import annotations

import argparse
import dataclasses
import multiprocessing as mp
import os
import platform
import time

import torch

from eqlens.simulation import LensSimulator, get_config


def _config(image_size: int):
    return dataclasses.replace(get_config("model_i"), image_size=image_size)


def _cdm_indices(start: int, n: int) -> torch.Tensor:
    return torch.arange(start, start + n) * 3 + 1  # index % 3 == 1: cdm, 25 subhalos


def _cpu_worker(args) -> tuple[int, float, float]:
    image_size, batch, seconds, rank, compile_ = args
    torch.set_num_threads(1)
    sim = LensSimulator(_config(image_size), device="cpu", dtype=torch.float32, compile=compile_)
    sim.simulate(rank, _cdm_indices(0, batch))  # warm-up (and compilation)
    done, start, cpu_start, i = 0, time.perf_counter(), time.process_time(), 1
    while time.perf_counter() - start < seconds:
        sim.simulate(rank, _cdm_indices(i * batch, batch))
        done, i = done + batch, i + 1
    return done, time.perf_counter() - start, time.process_time() - cpu_start


def bench_cpu(image_size: int, batch: int, workers: int, seconds: float, compile_: bool) -> tuple[float, float]:
    """(images/s summed over ``workers`` processes, CPU ms per image averaged over them)."""
    with mp.get_context("spawn").Pool(workers) as pool:
        results = pool.map(_cpu_worker, [(image_size, batch, seconds, r, compile_) for r in range(workers)])
    rate = sum(done / elapsed for done, elapsed, _ in results)
    cpu_ms = 1e3 * sum(cpu for _, _, cpu in results) / sum(done for done, _, _ in results)
    return rate, cpu_ms


def cpu_stage_costs(image_size: int, batch: int, seconds: float) -> dict[str, float]:
    """CPU ms per image of each stage in this process with one thread (best of a few rounds)."""
    torch.set_num_threads(1)
    sim = LensSimulator(_config(image_size), device="cpu", dtype=torch.float32)
    idx = _cdm_indices(0, batch)
    params = sim.sample(0, idx)
    flux = sim.render(params)
    stages = {"sample": lambda: sim.sample(0, idx), "render": lambda: sim.render(params),
              "noise": lambda: sim.add_noise(flux, params, 0, idx), "full": lambda: sim.simulate(0, idx)}  # fmt: skip
    costs = {}
    for name, fn in stages.items():
        fn()
        best, deadline = float("inf"), time.perf_counter() + seconds
        while True:
            start = time.process_time()
            for _ in range(3):
                fn()
            best = min(best, (time.process_time() - start) / 3)
            if time.perf_counter() > deadline:
                break
        costs[name] = 1e3 * best / batch
    return costs


def _time(fn, repeats: int, sync) -> float:
    fn()
    sync()
    start = time.perf_counter()
    for _ in range(repeats):
        fn()
    sync()
    return (time.perf_counter() - start) / repeats


def bench_cuda(image_size: int, batch: int, compile_: bool, repeats: int) -> tuple[float, float]:
    sim = LensSimulator(_config(image_size), device="cuda", dtype=torch.float32, compile=compile_)
    idx = _cdm_indices(0, batch).cuda()
    params = sim.sample(0, idx)
    sync = torch.cuda.synchronize
    render = _time(lambda: sim.render(params), repeats, sync)
    full = _time(lambda: sim.simulate(0, idx), repeats, sync)
    return batch / full, batch / render


def bench_lenstronomy(image_size: int, n: int) -> float | None:
    try:
        from lenstronomy.Data.imaging_data import ImageData
        from lenstronomy.Data.psf import PSF
        from lenstronomy.ImSim.image_model import ImageModel
        from lenstronomy.LensModel.lens_model import LensModel
        from lenstronomy.LightModel.light_model import LightModel
    except ImportError:
        return None
    import numpy as np

    sim = LensSimulator(_config(image_size), dtype=torch.float64)
    p = sim.sample(0, _cdm_indices(0, 1))
    c = (image_size - 1) / 2 * sim.config.pixel_scale
    pix2angle = np.eye(2) * sim.config.pixel_scale
    data = ImageData(background_rms=0.01, exposure_time=1000.0, ra_at_xy_0=-c, dec_at_xy_0=-c,
                     transform_pix2angle=pix2angle, image_data=np.zeros((image_size,) * 2))  # fmt: skip
    kwargs_lens = [{"theta_E": float(p.theta_E[0]), "e1": 0.1, "e2": 0.0, "center_x": 0.0, "center_y": 0.0},
                   {"gamma1": 0.05, "gamma2": 0.0}]  # fmt: skip
    kwargs_lens += [{"theta_E": float(t), "center_x": float(x), "center_y": float(y)}
                    for t, x, y in zip(p.subhalo_theta_E[0], p.subhalo_x[0], p.subhalo_y[0], strict=True)]  # fmt: skip
    model = ImageModel(data, PSF(psf_type="GAUSSIAN", fwhm=0.087, pixel_size=sim.config.pixel_scale, truncation=3),
                       lens_model_class=LensModel(["SIE", "SHEAR"] + ["POINT_MASS"] * 25),
                       source_model_class=LightModel(["SERSIC_ELLIPSE"]))  # fmt: skip
    source = [{"amp": 20.0, "R_sersic": 0.25, "n_sersic": 1.0, "e1": -0.1, "e2": 0.1, "center_x": 0.1, "center_y": 0.0}]
    start = time.perf_counter()
    for _ in range(n):
        image = model.image(kwargs_lens, source)
        np.random.poisson(np.clip(1000 * image + 10 * np.random.randn(*image.shape), 0, None))
    return n / (time.perf_counter() - start)


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no CUDA"
    return f"{cpu}, {os.cpu_count()} logical CPUs; {gpu}; torch {torch.__version__}"


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="tiny sizes and durations (checks that the script runs)")
    ap.add_argument("--image-size", type=int, default=150)
    ap.add_argument("--cpu-batch", type=int, default=8)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--seconds", type=float, default=10.0, help="CPU timing per configuration")
    ap.add_argument("--cuda-batches", default="256,512,1024,2048,4096")
    ap.add_argument("--cpu-compile", action="store_true", help="also time torch.compile on CPU (needs a C++ compiler)")
    args = ap.parse_args(argv)
    if args.quick:
        args.image_size, args.seconds, args.cuda_batches = 48, 0.5, "32"

    rows = []
    stages = cpu_stage_costs(args.image_size, args.cpu_batch, args.seconds / 4)
    for compile_ in (False, True) if args.cpu_compile else (False,):
        rate, cpu_ms = bench_cpu(args.image_size, args.cpu_batch, args.workers, args.seconds, compile_)
        mode = "compiled" if compile_ else "eager"
        name = f"eqlens CPU {mode}, {args.workers} proc x 1 thread, batch {args.cpu_batch}"
        rows.append((name, f"full ({cpu_ms:.2f} CPU ms/image)", rate))
    if torch.cuda.is_available():
        for compile_ in (False, True):
            for batch in (int(b) for b in args.cuda_batches.split(",")):
                full, render = bench_cuda(args.image_size, batch, compile_, repeats=3 if args.quick else 20)
                name = f"eqlens CUDA {'compiled' if compile_ else 'eager'}, batch {batch}"
                rows += [(name, "full", full), (name, "render", render)]
    lt = bench_lenstronomy(args.image_size, 5 if args.quick else 100)
    if lt is not None:
        rows.append(("lenstronomy, 1 process", "image + noise", lt))

    note = "" if lt is not None else "; lenstronomy not installed"
    print(f"\nMachine: {machine()}\nScene: {args.image_size}x{args.image_size}, SIE + shear + 25 point-mass subhalos, "
          f"Sersic source, Gaussian PSF, DeepLense noise, float32{note}")  # fmt: skip
    print("\n| simulator | what | images/s |\n|---|---|---:|")
    for name, what, rate in rows:
        print(f"| {name} | {what} | {rate:,.0f} |")
    print(f"\nCPU ms per image, 1 process x 1 thread, batch {args.cpu_batch}: "
          + ", ".join(f"{k} {v:.2f}" for k, v in stages.items()))  # fmt: skip


if __name__ == "__main__":
    main()
