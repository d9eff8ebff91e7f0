"""Rewrite committed model cards at today's format (``eqlens.checkpoint.card.migrate``), weights untouched.

    .venv/bin/python scripts/migrate_cards.py checkpoints campaigns [campaigns/inputs]

Each checkpoint's card is read (which migrates it: a format-1 card gains the variant its settings are, its
data's simulation config, and loses a plain model's group) and written back, the side card and the card
embedded in ``model.safetensors`` alike. The script checks that the tensors are the same, bit for bit, and
that the rewritten checkpoint gives the same logits as before on random images; a folder holding only a
card (weights not kept) gets its side card rewritten. Running it again changes nothing.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from eqlens.checkpoint import (  # noqa: E402
    CARD_FILE,
    WEIGHTS_FILE,
    ModelCard,
    load_checkpoint,
    read_checkpoint,
    write_checkpoint,  # noqa: E402
)
from eqlens.checkpoint.card import FORMAT_VERSION  # noqa: E402
from eqlens.core.jsonio import dumps  # noqa: E402


def migrate(folder: Path) -> bool:
    """Rewrite ``folder``'s card at :data:`FORMAT_VERSION`; False when it already is."""
    raw = json.loads((folder / CARD_FILE).read_text())
    if raw.get("format_version") == FORMAT_VERSION:
        return False
    if not (folder / WEIGHTS_FILE).exists():
        card = ModelCard.from_json(raw, str(folder))
        (folder / CARD_FILE).write_text(dumps(card.to_json()) + "\n")
        return True
    before_tensors, card = read_checkpoint(folder)
    model, _ = load_checkpoint(folder)
    size = int(card.input.image_size)
    x = torch.rand(4, 1, size, size, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        before = model.eval()(x)
    write_checkpoint(folder, model, card)
    after_tensors, again_card = read_checkpoint(folder)
    again, _ = load_checkpoint(folder)
    with torch.no_grad():
        after = again.eval()(x)
    assert again_card.format_version == FORMAT_VERSION, folder
    assert before_tensors.keys() == after_tensors.keys()
    assert all(torch.equal(before_tensors[k], after_tensors[k]) for k in before_tensors), folder
    assert torch.equal(before, after), folder
    return True


def main(argv=None) -> int:
    roots = [Path(p) for p in (argv if argv is not None else sys.argv[1:])] or [ROOT / "checkpoints"]
    for root in roots:
        for folder in sorted(p for p in root.iterdir() if (p / CARD_FILE).is_file()):
            print(f"{folder}: {'migrated' if migrate(folder) else 'already at format ' + str(FORMAT_VERSION)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
