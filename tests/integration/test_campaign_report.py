"""scripts/campaign_report.py reads the committed campaign cards: the flagship's curve and the comparison of
runs come from the cards alone (nothing re-run)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _report():
    spec = importlib.util.spec_from_file_location("campaign_report", ROOT / "scripts" / "campaign_report.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_hours_to_reach_is_the_first_epoch_at_the_level_and_none_below_it():
    report = _report()
    rows = [(1, 100, 0.5, 0.90, 0.97), (2, 200, 1.0, 0.94, 0.98), (3, 300, 1.5, 0.93, 0.98), (4, 400, 2.0, 0.95, 0.99)]
    assert report.hours_to_reach(rows, 0.94) == 1.0 and report.hours_to_reach(rows, 0.95) == 2.0
    assert report.hours_to_reach(rows, 0.96) is None


def test_compare_tabulates_the_committed_flagship_campaign_and_draws_the_figure(tmp_path, capsys):
    report = _report()
    run = ROOT / "campaigns" / "flagship_gcnn"
    report.compare([run], tmp_path / "compare.png")
    out = capsys.readouterr().out
    row = next(line for line in out.splitlines() if line.startswith("| flagship_gcnn"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[1:4] == ["gcnn C4", "82,075", "48"] and cells[5] == "0.9520"
    rows = report.curve_rows(report.latest_card(run))
    hours = [r[2] for r in rows]
    assert [r[0] for r in rows] == list(range(1, 49)) and hours == sorted(set(hours))
    assert (tmp_path / "compare.png").stat().st_size > 10_000
