r"""Card and file text is shown as text, never as markup: a class name ``<img src=x onerror=...>`` or an upload
named ``![t](http:\\host\leak.png)`` reaches every st.markdown/st.caption/... escaped (the scrubber's DOM in
Chromium: tests/app/test_hostile_text_browser.py)."""

from __future__ import annotations

import re

import pytest

from app import markup

from .conftest import no_exception, ring_lens
from .test_pages import npy_bytes, write_tiny_checkpoint

SCRIPT_CLASS = '<img src=x onerror="window.top.eqlensPwned=1">'
IMAGE_CLASS = r"![c](http:\\127.0.0.1:9\card-leak.png)"
IMAGE_FILE = r"![f](http:\\127.0.0.1:9\file-leak.png)<img src=x onerror=alert(1)>"
HOSTILE = [SCRIPT_CLASS, IMAGE_CLASS, IMAGE_FILE, ":red[styled] $x^2$ **bold** _it_", "1. a list", "- item",
           "a`b``c", "&lt;b&gt;", "# heading", "line\nbreak", "[link](javascript:alert(1))", "<https://e.example>"]


def shown(body: str) -> str:
    """What Markdown shows of ``body``, as far as escapes and code spans go."""
    def one(m):
        return m["code"] if m["fence"] else m["escaped"]

    return re.sub(r"(?P<fence>`+) ?(?P<code>.*?) ?(?<!`)(?P=fence)(?!`)|\\(?P<escaped>[!-/:-@\[-`{-~])", one, body)


FETCHING = ("![", "](", "<", "[", "$")  # images, links, HTML and autolinks, Streamlit's colours, LaTeX


def live_markup(body: str, styling: bool = True) -> list[str]:
    """The Markdown constructs left active in ``body`` (outside code spans, not escaped): those that fetch or
    run anything, and with ``styling`` also entities, emphasis, strike-through and a block at its start."""
    body = re.sub(r"(`+).*?(?<!`)\1(?!`)", "", body)
    body = re.sub(r"\\[!-/:-@\[-`{-~]", "", body)
    found = [token for token in FETCHING if token in body]
    if styling:
        found += [token for token in ("&", "*", "~") if token in body]
        found += [m[0] for m in re.finditer(r"(?<![0-9A-Za-z])_|_(?![0-9A-Za-z])", body)]
        found += [body[:3]] if re.match(r"\s*(\d+[.)]|[-+#=>])", body) else []
    return found


@pytest.mark.parametrize("value", HOSTILE)
def test_markup_text_shows_every_character_and_leaves_nothing_active(value):
    for rendered in (markup.text(value), markup.code(value)):
        assert shown(rendered) == value.replace("\n", " ")
        assert "\n" not in rendered
    assert not live_markup(markup.text(value)), markup.text(value)
    assert not live_markup(markup.code(value))


def markdown_bodies(at) -> list[str]:
    """Every string the page rendered as Markdown (text elements, alerts, headings, metric labels)."""
    bodies = []
    for kind in ("markdown", "caption", "info", "warning", "error", "success", "title", "header", "subheader"):
        bodies += [e.value for e in getattr(at, kind)]
    return bodies + [m.label for m in at.metric]


def test_a_card_s_class_names_and_an_upload_s_file_name_reach_the_page_as_text(app_test, checkpoint_dir):
    # The preferred default checkpoint, its classes hostile; then a lens uploaded under a hostile name.
    write_tiny_checkpoint(checkpoint_dir, "model_i_gcnn", "gcnn", "model_i", [SCRIPT_CLASS, IMAGE_CLASS, "no_sub"])
    at = app_test()
    at.radio(key="explore_source").set_value("Upload").run()
    at.file_uploader(key="explore_image_upload").upload(f"{IMAGE_FILE}.npy", npy_bytes(ring_lens().image)).run()
    no_exception(at)
    assert not at.error, [e.value for e in at.error]
    hostile = [b for b in markdown_bodies(at) if any(s in shown(b) for s in (SCRIPT_CLASS, IMAGE_CLASS, IMAGE_FILE))]
    texts = " | ".join(shown(b) for b in hostile)
    assert SCRIPT_CLASS in texts and IMAGE_CLASS in texts and IMAGE_FILE in texts, texts  # shown, as they are
    for body in hostile:  # the page's own bold and code spans aside, nothing in it fetches or runs
        assert not live_markup(body, styling=False), body
