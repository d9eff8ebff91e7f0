"""Every failure of one entry stays in that entry: a checkpoint whose card no reader takes (a 5000-digit
integer, which Python's JSON refuses with ValueError, or any other exception) is listed as broken with its
reason, loading it is a CheckpointError, and every other model and every page works."""

from __future__ import annotations

import pytest

from app import catalog, runs
from eqlens.errors import CheckpointError

from .conftest import no_exception
from .test_pages import write_tiny_checkpoint

PAGES = ["views/explore.py", "views/compare.py", "views/train.py", "views/misclassified.py"]


def write_huge_integer_card(folder, name: str):
    write_tiny_checkpoint(folder, name, "cnn", "model_i", ["axion", "cdm", "no_sub"])
    card = folder / name / "model_card.json"
    text = card.read_text().rstrip()
    card.write_text(text[:-1].rstrip() + ', "epochs_seen": ' + "7" * 5000 + "}\n")
    return folder / name


@pytest.fixture
def shelf(checkpoint_dir):
    """A good checkpoint, one whose card holds a 5000-digit integer (the preferred default name, so every
    page opens on it), and one whose card is not JSON."""
    write_tiny_checkpoint(checkpoint_dir, "good_cnn", "cnn", "model_i", ["axion", "cdm", "no_sub"])
    huge = write_huge_integer_card(checkpoint_dir, "model_i_gcnn")
    garbage = checkpoint_dir / "garbage"
    garbage.mkdir()
    (garbage / "model_card.json").write_text("{not json")
    return checkpoint_dir, huge, garbage


def test_a_broken_card_is_listed_as_broken_with_its_reason_and_the_others_load(shelf):
    folder, huge, garbage = shelf
    entries = {e.key: e for e in catalog.entries()}
    good = entries[f"ckpt:{folder / 'good_cnn'}"]
    assert good.broken is None and "broken" not in good.label
    for path in (huge, garbage):
        entry = entries[f"ckpt:{path}"]
        assert entry.broken and f"{path.name} (broken: " in entry.label, entry
        with pytest.raises(CheckpointError):
            catalog.load(entry.key)
    assert "digits" in entries[f"ckpt:{huge}"].broken  # Python's own words for the integer it refused
    assert catalog.load(good.key).trained
    assert catalog.shipped_key("model_i_gcnn") is None  # pages that open on it fall back as if it were missing
    assert [r.name for r in runs.list_runs(folder)] == ["good_cnn"]


def test_any_exception_from_one_entry_stays_in_that_entry(shelf, monkeypatch):
    import eqlens.checkpoint as checkpoint

    folder, _, _ = shelf
    original = checkpoint.read_card

    def read_card(path, *args, **kwargs):
        if "good_cnn" in str(path):
            raise RuntimeError("a reader crashed")
        return original(path, *args, **kwargs)

    monkeypatch.setattr(checkpoint, "read_card", read_card)
    entry = catalog.checkpoint_entry(folder / "good_cnn")
    assert entry.broken == "RuntimeError: a reader crashed"
    assert any(e.key.startswith("untrained:") for e in catalog.entries())


@pytest.mark.parametrize("page", PAGES)
def test_every_page_with_a_model_list_renders_beside_a_broken_card(app_test, shelf, page):
    at = app_test(page)
    no_exception(at)
    if page.endswith("train.py"):  # Train lists runs to fine-tune: the broken ones are left out, the good one is there
        options = at.selectbox(key="train_ft_source").options
        assert [o.split(" ")[0] for o in options] == ["good_cnn"], options
        return
    selector = next(s for s in at.selectbox if (s.key or "").endswith("model"))
    assert any("model_i_gcnn (broken: " in o for o in selector.options), selector.options
    assert any("Cannot load this model" in e.value and "digits" in e.value for e in at.error)
