"""Promise: a folder scan looks at most two levels below the folder it is given (a split root's splits and
their class folders), and scan_limits bounds it in entries and seconds, so pointing at a system folder
fails fast instead of walking its tree."""

from __future__ import annotations

import pytest

from eqlens.data import deeplense
from eqlens.data.deeplense import DeepLenseFolderDataset, ScanLimitError, list_splits, scan_limits
from eqlens.errors import DataError

from .layouts import write_common_test, write_model_i


def _deep_tree(root, depth: int = 6, width: int = 3):
    """Folders nested ``depth`` deep, ``width`` wide, with no data anywhere (like /usr)."""
    level = [root]
    for _ in range(depth):
        level = [folder / f"d{i}" for folder in level for i in range(width)]
    for folder in level:
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "README").write_text("not data")
    return root


def test_an_unknown_tree_is_not_walked_below_two_levels(tmp_path, monkeypatch):
    root = _deep_tree(tmp_path / "tree")
    listed = []
    original = deeplense._list
    monkeypatch.setattr(deeplense, "_list", lambda folder: listed.append(folder) or original(folder))
    with pytest.raises(DataError, match="unknown layout"):
        DeepLenseFolderDataset(root)
    depths = {len(folder.relative_to(root).parts) for folder in listed}
    assert max(depths) <= 2, sorted(depths)


def test_the_entry_budget_stops_a_large_scan(tmp_path):
    folder = tmp_path / "many"
    folder.mkdir()
    for i in range(300):
        (folder / f"f{i}.txt").write_text("")
    with scan_limits(max_entries=100, seconds=60), pytest.raises(ScanLimitError, match="passed 100 entries"):
        DeepLenseFolderDataset(folder)


def test_the_time_budget_stops_a_slow_scan(tmp_path):
    root = _deep_tree(tmp_path / "tree", depth=3, width=5)
    with scan_limits(max_entries=10**6, seconds=0), pytest.raises(ScanLimitError, match="over 0 s"):
        DeepLenseFolderDataset(root)


def test_layouts_and_splits_are_found_within_the_limits(tmp_path):
    write_model_i(tmp_path / "Model_I")
    write_common_test(tmp_path / "common")
    with scan_limits(max_entries=1000, seconds=30):
        assert len(DeepLenseFolderDataset(tmp_path / "Model_I")) == 6
        assert list_splits(tmp_path / "common") == ("train", "val")
        assert len(DeepLenseFolderDataset(tmp_path / "common", split="train")) == 6


def test_without_limits_a_scan_is_unbounded(tmp_path):
    write_model_i(tmp_path / "Model_I", per_class=40)
    assert len(DeepLenseFolderDataset(tmp_path / "Model_I")) == 120
