"""Training images per second on the CPU: the shipped recipe of before against the flagship recipe,
side by side in one run (issue 12's speed goal: at least 2x the flagship's training img/s).

    python benchmarks/bench_training_speed.py                 # writes docs/benchmarks_training.md
    python benchmarks/bench_training_speed.py --quick         # a few steps each: proves it runs

Two sections, each row measured in this one process, one after the other:

1. **The trainer, end to end** (``eqlens.training.train``: simulation of each batch on the fly,
   augmentation, mask, forward, backward, Adam; validation excluded): ``images_seen / train_time``
   over one epoch of ``--steps`` batches of 32, after a short warm-up run of the same config.
2. **One training step of the model alone** (fixed batch of 32, forward + cross-entropy + backward
   + Adam): median over repeats, for gcnn as shipped, the flagship gcnn, ``torch.compile`` of it
   (inductor; its compile time reported apart) and eqcvt_inv (escnn) at the flagship's input.

Rows alternate in a fixed order; run it on a quiet machine (the load average is printed).
"""

from __future__ import annotations

import argparse
import time

import torch
import torch.nn.functional as F
from common import machine_description, markdown_table, report, seconds_per_call, write_report

from eqlens import models
from eqlens.core.run_config import TrainConfig
from eqlens.training import train

SHIPPED_GCNN = {}  # the builder's defaults: widths 16-24-32-32, stride-1 lifting layer (81k parameters)
FLAGSHIP_GCNN = {"widths": [8, 16, 32, 48], "lift_stride": 2}  # 82k parameters

# (label, TrainConfig overrides): the recipe of the shipped model_i_gcnn, then what changed, one thing at a time.
TRAINER_ROWS = [
    ("before: shipped gcnn, 65 px resized, image rotation", dict(image_size=65, model_kwargs=SHIPPED_GCNN)),
    ("shipped gcnn at the 81 px native crop", dict(crop=81, image_size=81, model_kwargs=SHIPPED_GCNN)),
    ("flagship gcnn, 81 px crop, image rotation", dict(crop=81, image_size=81, model_kwargs=FLAGSHIP_GCNN)),
    ("after: flagship gcnn, 81 px crop, fresh scenes rendered turned",
     dict(crop=81, image_size=81, model_kwargs=FLAGSHIP_GCNN, fresh_data=True, augment_mode="scene")),
    ("flagship, fresh scenes, batch 64",
     dict(crop=81, image_size=81, model_kwargs=FLAGSHIP_GCNN, fresh_data=True, augment_mode="scene", batch_size=64)),
]


def trainer_images_per_s(overrides: dict, steps: int, threads: int) -> float:
    batch = overrides.get("batch_size", 32)
    base = dict(model="gcnn", group="C4", data="model_i", epochs=1, batch_size=32, lr=1e-3, train_size=steps * batch,
                val_size=3, test_size=0, robustness_size=0, device="cpu", threads=threads,
                steps_per_epoch=steps)
    config = {**base, **overrides}
    train(TrainConfig(**{**config, "steps_per_epoch": 2, "train_size": 2 * batch}))  # warm-up
    result = train(TrainConfig(**config))
    return result.images_per_s


def model_step_seconds(model, size: int, repeats: int) -> float:
    x, y = torch.rand(32, 1, size, size), torch.randint(0, 3, (32,))
    optimizer = torch.optim.Adam(model.parameters(), 1e-3)
    model.train()

    def step():
        loss = F.cross_entropy(model(x), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    return seconds_per_call(step, torch.device("cpu"), warmup=2, repeats=repeats)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=40, help="training steps per trainer row")
    parser.add_argument("--repeats", type=int, default=5, help="timed steps per model-step row")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--no-compile", action="store_true", help="skip the torch.compile row (~2 min to compile)")
    parser.add_argument("--quick", action="store_true", help="2 steps per row, no compile: a smoke run, prints only")
    parser.add_argument("--output", default="docs/benchmarks_training.md")
    args = parser.parse_args()
    steps, repeats = (2, 1) if args.quick else (args.steps, args.repeats)
    torch.set_num_threads(args.threads)
    machine = machine_description("cpu")

    trainer_rows = []
    for label, overrides in TRAINER_ROWS:
        rate = trainer_images_per_s(overrides, steps, args.threads)
        trainer_rows.append([label, rate])
        print(f"{label}: {rate:.1f} img/s", flush=True)
    before = trainer_rows[0][1]
    trainer_table = markdown_table(["trainer recipe", "train img/s", "x before"],
                                   [[label, rate, f"{rate / before:.2f}x"] for label, rate in trainer_rows])

    step_rows = []
    cases = [("gcnn as shipped, 65 px", "gcnn", SHIPPED_GCNN, 65, False),
             ("gcnn as shipped, 81 px", "gcnn", SHIPPED_GCNN, 81, False),
             ("flagship gcnn, 81 px", "gcnn", FLAGSHIP_GCNN, 81, False),
             ("eqcvt_inv (escnn), 81 px", "eqcvt_inv", {}, 81, False)]
    if not (args.quick or args.no_compile):
        cases.append(("flagship gcnn, 81 px, torch.compile (inductor)", "gcnn", FLAGSHIP_GCNN, 81, True))
    for label, name, kwargs, size, compiled in cases:
        torch.manual_seed(0)
        model = models.create(name, num_classes=3, group="C4", image_size=size, **kwargs)
        params = models.count_parameters(model)
        note = ""
        if compiled:
            start = time.perf_counter()
            model = torch.compile(model)
            model_step_seconds(model, size, 1)  # compiles forward and backward
            note = f"compile {time.perf_counter() - start:.0f} s"
        seconds = model_step_seconds(model, size, repeats)
        step_rows.append([label, params, 32 / seconds, note])
        print(f"{label}: {32 / seconds:.1f} img/s {note}", flush=True)
    step_table = markdown_table(["model step (batch 32, fwd + bwd + Adam)", "parameters", "img/s", "note"], step_rows)

    text = report("Training speed on the CPU", [
        f"Machine: {machine}.", "## The trainer, end to end", trainer_table,
        "## One training step of the model alone", step_table])
    print(text)
    if not args.quick:
        print(f"wrote {write_report(args.output, text)}")


if __name__ == "__main__":
    main()
