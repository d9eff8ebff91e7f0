"""Write app/gallery.json: the lenses of the app's Gallery page, chosen by eqlens.analysis.gallery.

    .venv/bin/python scripts/build_gallery.py [--checkpoint checkpoints/model_i_flagship] [--out app/gallery.json]

The truth sections depend on the simulator only; the error and population sections on the checkpoint's
predictions, recorded with the digest of its weights (tests/app/test_gallery_whatif.py checks both are up to
date). Deterministic: the same simulator and weights write the same file. About a minute on one CPU core.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from eqlens.analysis.gallery import build_gallery
from eqlens.checkpoint import load_checkpoint, predict, read_checkpoint
from eqlens.checkpoint.transfer import weights_digest

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", default=str(ROOT / "checkpoints" / "model_i_flagship"))
    parser.add_argument("--out", default=str(ROOT / "app" / "gallery.json"))
    args = parser.parse_args()
    torch.set_num_threads(1)
    model, card = load_checkpoint(args.checkpoint)
    name = Path(args.checkpoint).name

    def probabilities(images):
        return predict(model, card, images).values.numpy()

    gallery = build_gallery(probabilities, f"the {name}")
    gallery["model"] = {"name": name, "weights_sha256": weights_digest(read_checkpoint(args.checkpoint)[0]),
                        "class_names": list(card.class_names)}
    Path(args.out).write_text(json.dumps(gallery, indent=1) + "\n")
    print(f"wrote {args.out}: " + ", ".join(f"{s['key']} {len(s['picks'])}" for s in gallery["sections"]))


if __name__ == "__main__":
    main()
