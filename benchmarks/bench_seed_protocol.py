"""The EqCvT seed's training protocol, end to end and timed: the issue's goal is <= 60 s on one H100.

    python benchmarks/bench_seed_protocol.py                          # eqcvt_inv, binary, the seed's sizes
    python benchmarks/bench_seed_protocol.py --models gcnn,eqcvt_inv --data model_i --amp --batch-size 64
    python benchmarks/bench_seed_protocol.py --quick                  # tiny sizes: proves it runs

The seed trained on 9000 images (+1000 validation) for 40 epochs. One run here is exactly what
``eqlens train`` does with those sizes (1000 more images as the held-out test split): the images are
rendered by the built-in simulator on the training device every epoch (nothing cached, no files),
the model is trained with random rotations, validated every epoch, the best epoch is tested. The
wall time counts everything from building the data sets to the test report (robustness report
off: it is analysis, not training). Each row: model, data, device, image size, batch, amp, epochs,
the wall time, the training time alone, training img/s and the held-out test accuracy / macro AUC,
so a fast run that learns nothing shows as such.
"""

from __future__ import annotations

import argparse
import time

import torch
from common import machine_description, markdown_table, report, write_report

from eqlens.core.run_config import TrainConfig
from eqlens.training import train

SEED_SIZES = {"train_size": 9000, "val_size": 1000, "test_size": 1000, "epochs": 40}
QUICK_SIZES = {"train_size": 24, "val_size": 6, "test_size": 6, "epochs": 2}
HEADERS = ["model", "data", "device", "image", "batch", "amp", "augment", "epochs", "wall (s)", "training (s)",
           "train img/s", "test acc", "macro AUC"]


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--models", default="eqcvt_inv", help="comma-separated registry names")
    p.add_argument("--data", default="binary", help="simulation config (binary, model_i, ...)")
    p.add_argument("--image-size", type=int, default=None, help="default: the data's own, odd for odd-size models")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--lr", type=float, default=5e-4)
    p.add_argument("--amp", action="store_true", help="bf16 autocast (CUDA)")
    p.add_argument("--augment-mode", choices=("image", "scene"), default="image")
    p.add_argument("--device", default="auto")
    p.add_argument("--epochs", type=int, default=None, help="default: the seed's 40")
    p.add_argument("--quick", action="store_true", help="tiny sizes, 33 px: checks that the script runs")
    p.add_argument("--output", default=None, help="also write the markdown report to this file")
    return p.parse_args(argv)


def run_one(model: str, args: argparse.Namespace) -> list:
    sizes = dict(QUICK_SIZES if args.quick else SEED_SIZES)
    if args.epochs is not None:
        sizes["epochs"] = args.epochs
    image_size = 33 if args.quick else args.image_size
    config = TrainConfig(model=model, data=args.data, image_size=image_size, batch_size=args.batch_size, lr=args.lr,
                         schedule="cosine", amp=args.amp, device=args.device, augment_mode=args.augment_mode,
                         robustness_size=0, **sizes)
    start = time.perf_counter()
    result = train(config)
    if result.device.startswith("cuda"):
        torch.cuda.synchronize()
    wall = time.perf_counter() - start
    test = result.test_metrics or {}
    size = result.card.input.image_size
    return [model, args.data, result.device, size, args.batch_size, "bf16" if args.amp else "fp32",
            args.augment_mode, sizes["epochs"], wall, result.train_time_s, result.images_per_s,
            test.get("accuracy"), test.get("auc_macro")]


def main(argv=None) -> None:
    args = parse_args(argv)
    rows = []
    for model in [m.strip() for m in args.models.split(",") if m.strip()]:
        rows.append(run_one(model, args))
        print(markdown_table(HEADERS, rows[-1:]), flush=True)
    device = "cuda" if rows and str(rows[0][2]).startswith("cuda") else "cpu"
    sizes = QUICK_SIZES if args.quick else SEED_SIZES
    text = report("The seed's protocol, timed", [f"Machine: {machine_description(device)}", "",
                                                markdown_table(HEADERS, rows)],
                  [f"{sizes['train_size']} training + {sizes['val_size']} validation images rendered on the device "
                   f"every epoch, {sizes['test_size']} held-out test images; Adam, cosine schedule, lr {args.lr:g}. "
                   "Wall time: data sets built, every epoch trained and validated, the best epoch tested."])
    print(text)
    if args.output:
        print(f"written to {write_report(args.output, text)}")


if __name__ == "__main__":
    main()
