"""The ``eqlens`` command line: one sub-command per module of ``eqlens.commands``.

Each module there defines ``register(subparsers)``, which adds its parser and sets
``func=run``. Errors the user can fix (bad names, missing folders, corrupt checkpoints) are
printed as one line and exit with status 2; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from . import __version__

COMMANDS = ("simulate", "train", "evaluate", "bench", "shift", "fewshot", "signal", "models", "detectability")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="eqlens", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"eqlens {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    for name in COMMANDS:
        importlib.import_module(f"eqlens.commands.{name}").register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    from .errors import EqlensError

    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except EqlensError as err:
        print(f"eqlens {args.command}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"eqlens {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
