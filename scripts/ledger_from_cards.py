"""Write runs/ledger.jsonl lines for finished runs that predate the ledger, read from their cards.

    .venv/bin/python scripts/ledger_from_cards.py            # every runs/*.toml whose run is complete
    .venv/bin/python scripts/ledger_from_cards.py --dry-run  # print the lines only

A run already in the ledger is skipped, so running it twice adds nothing. Runs trained from their run file
since (``eqlens train --config``) are written by the trainer's call itself."""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from eqlens.checkpoint import read_card  # noqa: E402
from eqlens.errors import CheckpointError  # noqa: E402
from eqlens.training import ledger  # noqa: E402
from eqlens.training.run_file import read_run_file  # noqa: E402


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", default=str(ROOT / "runs"), help="the folder of run files and the ledger")
    parser.add_argument("--dry-run", action="store_true")
    args = parser.parse_args(argv)
    known = {entry.run for entry in ledger.read(args.runs)}
    for path in sorted(Path(args.runs).glob("*.toml")):
        run = read_run_file(path)
        if run.name in known:
            continue
        try:
            card = read_card(ROOT / run.out)
        except CheckpointError:
            continue  # not trained yet
        if not card.training.get("complete"):
            continue  # in progress: its calls write their own lines
        entry = ledger.entry_from_card(run, card)
        print(json.dumps(asdict(entry), sort_keys=True))
        if not args.dry_run:
            ledger.append(args.runs, entry)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
