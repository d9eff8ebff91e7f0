"""The robustness table of every shipped checkpoint: accuracy +- s.e. under each shift, McNemar against the
flagships, written to docs/robustness.json (the app's chart) and between the markers of docs/generalisation.md.

    .venv/bin/python scripts/robustness_table.py [--checkpoints checkpoints] [--size 300] [--threads 1]
        [--shifts theta_e_1pct,...] [--json docs/robustness.json] [--docs docs/generalisation.md] [--rescore]

Every folder of ``--checkpoints`` holding a model card is scored (new ones, e.g. checkpoints/model_i_varied_*,
are picked up); a checkpoint already in the JSON with the same weights, size and shifts is kept unless
``--rescore``. Test lenses: the test stream of each card's data seed (eqlens.experiments.robustness).
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

import torch

from eqlens.experiments.robustness import (
    DEFAULT_PATH,
    TABLE_SHIFTS,
    load_record,
    markdown_table,
    pair_all,
    replace_between_markers,
    robustness_record,
    write_record,
)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--checkpoints", default="checkpoints", help="folder of checkpoint folders")
    p.add_argument("--only", default=None, help="comma-separated folder names to score (default: all)")
    p.add_argument("--size", type=int, default=300, help="test lenses per shift")
    p.add_argument("--shifts", default=",".join(TABLE_SHIFTS))
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--device", default="cpu")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--json", default=str(DEFAULT_PATH))
    p.add_argument("--docs", default="docs/generalisation.md", help="markdown file with the table's markers")
    p.add_argument("--rescore", action="store_true", help="score every checkpoint again")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)

    folders = sorted(d for d in Path(args.checkpoints).iterdir() if (d / "model_card.json").is_file())
    if args.only:
        wanted = {s.strip() for s in args.only.split(",")}
        folders = [d for d in folders if d.name in wanted]
    previous = None if args.rescore else load_record(args.json)
    command = "python scripts/robustness_table.py " + " ".join(shlex.quote(a) for a in (argv or sys.argv[1:]))
    def merged(record: dict) -> dict:
        if previous and args.only:  # keep the checkpoints this run does not score
            record = {**record, "checkpoints": {**previous.get("checkpoints", {}), **record["checkpoints"]}}
            record["paired"] = pair_all(record)
        return record

    record = robustness_record([str(d) for d in folders], args.shifts.split(","), size=args.size,
                               device=args.device, batch_size=args.batch_size, previous=previous,
                               command=command.strip(), log=lambda m: print(m, flush=True),
                               on_checkpoint=lambda r: write_record(merged(r), args.json))  # saved as it goes
    record = merged(record)
    write_record(record, args.json)
    table = markdown_table(record)
    docs = Path(args.docs)
    docs.write_text(replace_between_markers(docs.read_text(), f"Command: `{record['command']}`\n\n{table}"))
    print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
