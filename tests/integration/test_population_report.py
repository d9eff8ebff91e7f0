"""scripts/population_report.py: every checkpoint on the same lenses, s.e. beside each accuracy, McNemar
against the first on exactly the discordant lenses, seeds summarised by mean and spread."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _script():
    spec = importlib.util.spec_from_file_location("population_report", ROOT / "scripts" / "population_report.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_two_checkpoints_are_scored_on_the_same_lenses_and_compared_pairwise(tmp_path, capsys):
    script = _script()
    a, b = str(ROOT / "checkpoints" / "model_i_cnn"), str(ROOT / "checkpoints" / "model_i_gcnn")
    out = tmp_path / "report.json"
    assert script.main([a, b, "--data", "model_i", "--size", "24", "--seeds", a, b, "--json", str(out)]) == 0
    printed = capsys.readouterr().out
    rows = [script.score(p, "model_i", 24, "cpu") for p in (a, b)]
    assert [r["n"] for r in rows] == [24, 24]
    first, second = rows
    a_only = sum(x and not y for x, y in zip(first["correct"], second["correct"], strict=True))
    b_only = sum(y and not x for x, y in zip(first["correct"], second["correct"], strict=True))
    assert f"({a_only} vs {b_only} discordant" in printed
    saved = json.loads(out.read_text())
    assert saved["rows"][0]["accuracy"] == first["accuracy"] and "correct" not in saved["rows"][0]
    assert abs(saved["rows"][0]["se"] - (first["accuracy"] * (1 - first["accuracy"]) / 24) ** 0.5) < 1e-12
    assert saved["seeds"]["accuracies"] == [first["accuracy"], second["accuracy"]]
