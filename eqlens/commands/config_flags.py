"""The command-line flags of :class:`eqlens.core.run_config.TrainConfig`, derived from its fields: one flag per
field (``--batch-size`` for ``batch_size``), its type, default, choices, range and help taken from the
field and its metadata (:func:`eqlens.core.run_config._setting`), so a new setting reaches ``eqlens train``
and ``eqlens bench`` without being written out again. Ranges are checked by the parser
(:mod:`eqlens.commands.argtypes`), naming the flag."""

from __future__ import annotations

from dataclasses import MISSING, Field, fields

from . import argtypes


def config_fields(names=None) -> list[Field]:
    """The fields that have a flag, in the config's order (``names``: only these)."""
    from ..core.run_config import TrainConfig

    chosen = [f for f in fields(TrainConfig) if f.metadata.get("cli", True)]
    return chosen if names is None else [f for f in chosen if f.name in names]


def _flag(f: Field) -> str:
    return f.metadata.get("flag") or "--" + f.name.replace("_", "-")


def _dest(f: Field) -> str:
    return _flag(f).removeprefix("--").replace("-", "_")


def _switched_off(f: Field) -> bool:
    """A bool field on by default whose flag (``--no-mask``) switches it off."""
    return f.type == "bool" and _flag(f).startswith("--no-")


def _value_type(f: Field):
    """The argparse type: a range-checked integer or number, or None (a string)."""
    kind = f.type.split("|")[0].strip()
    low, high = f.metadata.get("range") or (None, None)
    if kind == "int":
        return argtypes.integer(low, high)
    if kind == "float":
        return argtypes.number(0.0 if low is None else low, high, low_open=f.metadata.get("low_open", False))
    return None


def add_config_flags(parser, names=None, *, unset=(), groups=None, notes=None) -> None:
    """Add a flag for each :class:`TrainConfig` field that has one (``names``: only these).

    ``unset``: fields whose flag defaults to None, for the command to fill in (e.g. from a checkpoint);
    ``groups``: field name -> the argparse group (e.g. mutually exclusive) its flag joins; ``notes``:
    field name -> what the command adds to its help."""
    for f in config_fields(names):
        target = (groups or {}).get(f.name, parser)
        meta = f.metadata
        help = meta.get("help") + (f"; {notes[f.name]}" if f.name in (notes or {}) else "")
        if f.type == "bool":
            target.add_argument(_flag(f), dest=_dest(f), action="store_true", help=help)
            continue
        default = None if f.name in unset or f.default is MISSING else f.default
        target.add_argument(_flag(f), dest=_dest(f), type=_value_type(f), default=default,
                            choices=meta.get("choices"), metavar=meta.get("metavar"), help=help)


def config_values(args, names=None) -> dict:
    """``{field: value}`` of the parsed flags that :func:`add_config_flags` added (``--no-mask`` given:
    ``circular_mask=False``)."""
    values = {}
    for f in config_fields(names):
        value = getattr(args, _dest(f))
        values[f.name] = (not value) if _switched_off(f) else value
    return values
