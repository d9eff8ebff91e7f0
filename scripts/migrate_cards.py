"""Rewrite shipped model cards so that their build config states every hyper-parameter (issue 14).

    .venv/bin/python scripts/migrate_cards.py [checkpoints]

A card that records only the arguments passed to ``registry.create`` (name, classes, group, size)
leaves the rest to the builder's current defaults. Loading such a card rebuilds the model with those
defaults, which ``create`` writes into ``build_config``; this
script saves that back (weights untouched: the same tensors, bit for bit) and checks that the
rewritten checkpoint gives the same logits as before on random images.
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch

from eqlens.checkpoint import load_checkpoint, read_checkpoint, write_checkpoint


def migrate(folder: Path) -> bool:
    before_tensors, card = read_checkpoint(folder)
    model, _ = load_checkpoint(folder)
    full = dict(model.build_config)
    if card.build_config == full:
        return False
    size = int(full["image_size"])
    x = torch.rand(4, 1, size, size, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        before = model.eval()(x)
    write_checkpoint(folder, model, card.replace(build_config=full))
    after_tensors, _ = read_checkpoint(folder)
    again, _ = load_checkpoint(folder)
    with torch.no_grad():
        after = again.eval()(x)
    assert before_tensors.keys() == after_tensors.keys()
    assert all(torch.equal(before_tensors[k], after_tensors[k]) for k in before_tensors), folder
    assert torch.equal(before, after), folder
    return True


def main() -> None:
    root = Path(sys.argv[1] if len(sys.argv) > 1 else "checkpoints")
    for folder in sorted(p for p in root.iterdir() if (p / "model_card.json").is_file()):
        print(f"{folder.name}: {'migrated' if migrate(folder) else 'already complete'}")


if __name__ == "__main__":
    main()
