"""The robustness table of every shipped checkpoint: accuracy +- binomial s.e. under each named shift, paired
McNemar tests against the flagship on the same lenses, one JSON record the app reads and a markdown table
for the docs.

    record = robustness_record(["checkpoints/model_i_flagship", ...], TABLE_SHIFTS, size=300)
    write_record(record, "docs/robustness.json")
    print(markdown_table(record))
    model_robustness(load_record("docs/robustness.json"), "model_i_flagship")   # the app's chart rows

Each checkpoint is scored by :func:`eqlens.experiments.generalisation.evaluate_shifts` on the ``test`` stream
of its card's data seed (never in training), its shifts relative to its own training population: for a
model trained on ``model_i_varied`` the ``none`` column is its own population, ``model_i`` is Model I's one
fixed lens and ``tnfw`` is ``model_i_varied_tnfw``. Shifts that do not apply are listed with the reason.
Per-lens results are kept (as a string of 0/1) so that a later run can pair a new checkpoint with the old.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

from ..errors import DataError
from .generalisation import evaluate_shifts, paired_tests
from .shifts import NONE, get_shift

FORMAT = "eqlens-robustness"
VERSION = 1
DEFAULT_PATH = Path("docs") / "robustness.json"

TABLE_SHIFTS = ("theta_e_1pct", "theta_e_3pct", "theta_e_10pct", "source_size_narrow", "lens_angle", "tnfw",
                "model_i", "model_i_varied", "psf_wide", "noise_x3", "theta_e_range", "ellipticity", "shear",
                "source_size", "model_ii_resized")
"""The table's shifts, in column order (``none`` comes first); the orientation shifts are left out (their
cost is 24 renders per lens: docs/generalisation.md has them)."""

_ROW_FIELDS = ("shift", "n", "accuracy", "accuracy_se", "auc_macro", "accuracy_drop", "lenses", "input_note")


def checkpoint_digest(source: str | Path) -> str:
    """SHA-256 (first 16 hex digits) of a checkpoint's weights and card: a rerun re-scores a changed one."""
    path = Path(source)
    files = [path] if path.is_file() else sorted(p for p in path.iterdir() if p.is_file())
    h = hashlib.sha256()
    for f in files:
        h.update(f.name.encode())
        h.update(f.read_bytes())
    return h.hexdigest()[:16]


def _entry(source: str, report: dict) -> dict:
    from ..checkpoint import read_card
    from ..simulation import registered_name
    from .generalisation import training_config

    card = read_card(source)
    base = training_config(card.data)
    rows = []
    for r in report["rows"]:
        row = {k: r[k] for k in _ROW_FIELDS if k in r}
        if "correct" in r:
            row["correct"] = "".join("1" if c else "0" for c in r["correct"])
        rows.append(row)
    return {"source": str(source), "digest": checkpoint_digest(source), "model": card.name,
            "population": registered_name(base) or base.name, "class_names": list(card.class_names),
            "rows": rows, "skipped": [{"shift": s["shift"], "reason": s["reason"]} for s in report["skipped"]]}


def robustness_record(sources: Sequence[str | Path], shifts: Iterable[str] = TABLE_SHIFTS, *, size: int = 300,
                      device="cpu", batch_size: int = 64, previous: dict | None = None, command: str = "",
                      log: Callable[[str], None] = print, on_checkpoint: Callable[[dict], None] | None = None) -> dict:
    """Score every checkpoint (one :func:`evaluate_shifts` call each) and pair them (:func:`pair_all`).

    A checkpoint of ``previous`` (an earlier record) with the same digest, size and shifts is kept, not
    re-scored. Names are checkpoint folder names. ``on_checkpoint(record)`` gets the record so far after
    each checkpoint (a long run saves as it goes)."""
    shifts = [s for s in shifts if s != NONE]
    for s in shifts:
        get_shift(s)
    entries = {}
    record = {"format": FORMAT, "version": VERSION, "command": command,
              "settings": {"size": size, "shifts": shifts, "device": str(device),
                           "test_lenses": "the test stream of each card's data seed, never used in training"},
              "shifts": {NONE: "the checkpoint's own population, unshifted",
                         **{s: get_shift(s).description for s in shifts}},
              "checkpoints": entries, "paired": []}
    for source in sources:
        name = Path(source).name
        old = (previous or {}).get("checkpoints", {}).get(name)
        settings_match = previous and previous.get("settings", {}).get("size") == size and \
            previous.get("settings", {}).get("shifts") == shifts
        if old and settings_match and old.get("digest") == checkpoint_digest(source):
            log(f"{name}: unchanged since the last run, kept")
            entries[name] = old
            continue
        log(f"{name}: scoring {len(shifts) + 1} test sets of {size} lenses")
        report = evaluate_shifts([source], shifts, size=size, device=device, batch_size=batch_size)
        entries[name] = _entry(str(source), report)
        if on_checkpoint is not None:
            on_checkpoint({**record, "checkpoints": dict(entries), "paired": pair_all(record)})
    record["paired"] = pair_all(record)
    return record


def pair_all(record: dict) -> list[dict]:
    """McNemar tests of each flagship (a folder named ``*_flagship``) against every other checkpoint, on each
    shift where the two saw the same lenses (equal ``lenses`` keys)."""
    rows = [{**r, "label": name, "correct": [c == "1" for c in r["correct"]]}
            for name, e in record["checkpoints"].items() for r in e["rows"] if "correct" in r]
    names = list(record["checkpoints"])
    pairs = [(a, b) for a in names if a.endswith("_flagship") for b in names if b != a]
    return paired_tests(rows, pairs)


def write_record(record: dict, path: str | Path = DEFAULT_PATH) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record, indent=1, allow_nan=True) + "\n")
    return path


def load_record(path: str | Path = DEFAULT_PATH) -> dict | None:
    """The record at ``path``, None when there is none. Raises :class:`DataError` for another format."""
    path = Path(path)
    if not path.is_file():
        return None
    record = json.loads(path.read_text())
    if not isinstance(record, dict) or record.get("format") != FORMAT or record.get("version") != VERSION:
        raise DataError(f"{path} is not an {FORMAT} record of version {VERSION}")
    return record


def model_robustness(record: dict | None, name: str) -> dict | None:
    """What the app charts for checkpoint folder ``name``: ``{"rows": [{"shift", "description", "n",
    "accuracy", "accuracy_se", "input_note"?}], "skipped", "chance", "population", "size"}``, the
    unshifted row first; None when the record has no such checkpoint."""
    entry = (record or {}).get("checkpoints", {}).get(name)
    if entry is None:
        return None
    descriptions = record.get("shifts", {})
    rows = [{k: r[k] for k in ("shift", "n", "accuracy", "accuracy_se", "input_note") if k in r}
            | {"description": descriptions.get(r["shift"], "")} for r in entry["rows"]]
    return {"rows": rows, "skipped": entry["skipped"], "chance": 1.0 / len(entry["class_names"]),
            "population": entry["population"], "size": record.get("settings", {}).get("size")}


# ------------------------------------------------------------------------------ markdown


def _cell(row: dict | None, skipped: dict | None, notes: list[str]) -> str:
    if row is not None:
        mark = ""
        if row.get("input_note"):
            if row["input_note"] not in notes:
                notes.append(row["input_note"])
            mark = f" <sup>r{notes.index(row['input_note']) + 1}</sup>"
        return f"{row['accuracy']:.3f} ± {row['accuracy_se']:.3f}{mark}"
    if skipped is None:
        return ""
    return "n/a" if skipped["reason"].startswith("not applicable") else "="


def markdown_table(record: dict) -> str:
    """Accuracy +- s.e. per checkpoint (rows) and shift (columns); ``n/a``: the shift does not apply
    (reasons below), ``=``: it leaves the population unchanged; then the McNemar tests."""
    shifts = [NONE, *record["settings"]["shifts"]]
    notes: list[str] = []
    lines = ["| checkpoint | population | " + " | ".join(f"`{s}`" for s in shifts) + " |",
             "|---|---|" + "---:|" * len(shifts)]
    reasons: dict[str, set[str]] = {}
    for name, e in record["checkpoints"].items():
        rows = {r["shift"]: r for r in e["rows"]}
        skipped = {s["shift"]: s for s in e["skipped"]}
        for s in e["skipped"]:
            reasons.setdefault(s["reason"], set()).add(f"{name} / `{s['shift']}`")
        cells = [_cell(rows.get(s), skipped.get(s), notes) for s in shifts]
        lines.append(f"| {name} | {e['population']} | " + " | ".join(cells) + " |")
    size = record["settings"]["size"]
    parts = ["\n".join(lines), "",
             f"Accuracy ± binomial s.e. on {size} lenses per cell ({record['settings']['test_lenses']}); the "
             "shifts of a checkpoint are relative to its own training population (its `none` column)."]
    parts += [f"<sup>r{i + 1}</sup> {note}." for i, note in enumerate(notes)]
    if reasons:
        parts += ["", "Not scored (`n/a`: does not apply; `=`: leaves the population unchanged):", ""]
        parts += [f"- {reason}: {', '.join(sorted(where))}" for reason, where in reasons.items()]
    if record.get("paired"):
        parts += ["", paired_table(record["paired"])]
    return "\n".join(parts) + "\n"


def paired_table(tests: Sequence[dict]) -> str:
    """One row per (flagship, other checkpoint): per shift, the flagship's accuracy minus the other's and the
    exact McNemar p-value on the same lenses."""
    shifts = list(dict.fromkeys(t["shift"] for t in tests))
    shifts = [NONE, *sorted((s for s in shifts if s != NONE), key=_order)] if NONE in shifts else shifts
    pairs = list(dict.fromkeys((t["a"], t["b"]) for t in tests))
    cell = {(t["a"], t["b"], t["shift"]): t for t in tests}
    lines = ["Paired McNemar tests on the same lenses: the flagship's accuracy minus the other's (exact p).", "",
             "| flagship | against | " + " | ".join(f"`{s}`" for s in shifts) + " |",
             "|---|---|" + "---:|" * len(shifts)]
    for a, b in pairs:
        cells = []
        for s in shifts:
            t = cell.get((a, b, s))
            cells.append("" if t is None else f"{t['difference']:+.3f} (p {_p(t['p_value'])})")
        lines.append(f"| {a} | {b} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _order(shift: str) -> int:
    return TABLE_SHIFTS.index(shift) if shift in TABLE_SHIFTS else len(TABLE_SHIFTS)


def _p(p: float) -> str:
    return f"{p:.2g}" if p >= 1e-3 else "<0.001"


BEGIN, END = "<!-- robustness-table:begin -->", "<!-- robustness-table:end -->"


def replace_between_markers(text: str, table: str) -> str:
    """``text`` with everything between :data:`BEGIN` and :data:`END` replaced by ``table`` (the markers are
    appended at the end when absent)."""
    block = f"{BEGIN}\n{table.rstrip()}\n{END}"
    if BEGIN in text and END in text:
        head, rest = text.split(BEGIN, 1)
        return head + block + rest.split(END, 1)[1]
    return text.rstrip("\n") + "\n\n" + block + "\n"
