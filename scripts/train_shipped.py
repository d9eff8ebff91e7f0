"""Train the checkpoints shipped in checkpoints/ (one command; GPU when present, else CPU).

    .venv/bin/python scripts/train_shipped.py --models cnn,gcnn,eqcvt,eqcvt_inv,cvt,gsa,vit --data model_i
    .venv/bin/python scripts/train_shipped.py --preset gpu ...   # the seed's protocol sizes on a GPU

The simulated splits are rendered once per process (``cache=True``) and shared by every model of
the list, so the CPU spends its time on training. Each run writes ``checkpoints/<data>_<model>/``
(best epoch on validation, test metrics on the held-out split) with its model card; the card's
``data`` entry records the simulator config, the data seed and the split sizes, so
``eqlens evaluate`` re-creates the same held-out test split.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

from eqlens.core.run_config import TrainConfig
from eqlens.data.simulated import SimulatedLensDataset
from eqlens.data.splits import DataSplits
from eqlens.training import train

PRESETS = {
    # 2-core CPU budget: 65 px (odd: the invariant models stay exact), 3000 training images.
    "cpu": dict(image_size=65, train_size=3000, val_size=600, test_size=900, batch_size=32, lr=1e-3,
                schedule="cosine"),
    # A seconds-long check that the script runs end to end.
    "smoke": dict(image_size=33, train_size=48, val_size=24, test_size=24, batch_size=16, lr=1e-3,
                  schedule="cosine"),
    # The seed's protocol on a GPU: 129 px, 9000 / 1000 (+ a 1000-image held-out test split).
    "gpu": dict(image_size=129, train_size=9000, val_size=1000, test_size=1000, batch_size=32, lr=5e-4,
                schedule="cosine"),
}
DEFAULT_EPOCHS = {"cnn": 15, "vit": 20, "cvt": 15, "gcnn": 8, "eqcvt": 8, "eqcvt_inv": 8, "gsa": 8}


def cached_splits(data: str, preset: dict, data_seed: int, device: str) -> DataSplits:
    sizes = {"train": preset["train_size"], "val": preset["val_size"], "test": preset["test_size"]}
    made = {}
    for split, n in sizes.items():
        t0 = time.perf_counter()
        made[split] = SimulatedLensDataset(data, split=split, size=n, seed=data_seed, image_size=preset["image_size"],
                                           device=device, cache=True)
        print(f"simulated {data}/{split}: {n} images in {time.perf_counter() - t0:.1f} s", flush=True)
    config = made["train"].config
    description = {"kind": "simulated", "spec": config.name, "simulation_config": config.to_dict(),
                   "data_seed": data_seed, "sizes": sizes, "cached": True}
    return DataSplits(made["train"], made["val"], made["test"], list(made["train"].class_names),
                      preset["image_size"], description)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", default="cnn,gcnn,eqcvt,eqcvt_inv,cvt,gsa,vit")
    p.add_argument("--data", default="model_i")
    p.add_argument("--group", default="C4")
    p.add_argument("--preset", choices=sorted(PRESETS), default=None, help="default: gpu if CUDA is present, else cpu")
    p.add_argument("--epochs", type=int, default=None, help="override the per-model defaults")
    p.add_argument("--image-size", type=int, default=None, help="override the preset's image size")
    p.add_argument("--train-size", type=int, default=None, help="override the preset's training-set size")
    p.add_argument("--data-seed", type=int, default=0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--augment-mode", choices=("image", "scene"), default="image",
                   help="turn the training pictures (image) or the simulated scenes, rendered at each angle (scene)")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--out", default="checkpoints")
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    preset = dict(PRESETS[args.preset or ("gpu" if device == "cuda" else "cpu")])
    if args.image_size:
        preset["image_size"] = args.image_size
    if args.train_size:
        preset["train_size"] = args.train_size
    splits = cached_splits(args.data, preset, args.data_seed, device)
    for model in args.models.split(","):
        out = Path(args.out) / f"{args.data}_{model}"
        config = TrainConfig(model=model, group=args.group, data=args.data, out=str(out),
                             epochs=args.epochs or DEFAULT_EPOCHS.get(model, 10), batch_size=preset["batch_size"],
                             lr=preset["lr"], schedule=preset["schedule"], image_size=preset["image_size"],
                             seed=args.seed, data_seed=args.data_seed, device=device,
                             train_size=preset["train_size"], val_size=preset["val_size"],
                             test_size=preset["test_size"], robustness_size=128, augment_mode=args.augment_mode)
        t0 = time.perf_counter()
        result = train(config, data=splits, progress_bar=True)
        test = result.test_metrics or {}
        print(f"{model}: best epoch {result.best_epoch}, test accuracy {test.get('accuracy')}, "
              f"macro AUC {test.get('auc_macro')}, {time.perf_counter() - t0:.0f} s -> {out}", flush=True)


if __name__ == "__main__":
    main()
