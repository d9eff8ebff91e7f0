"""Chromium: a click on a Gallery thumbnail's button opens that lens in Explore (skips without Chromium)."""

from __future__ import annotations

import json
import re

import pytest

from app.serve import CHROMIUM, CHROMIUM_ARGS, wait_idle

from .conftest import ROOT

pytestmark = pytest.mark.browser


def test_a_gallery_thumbnail_opens_that_lens_in_explore(server):
    from playwright.sync_api import sync_playwright

    first = json.loads((ROOT / "app" / "gallery.json").read_text())["sections"][0]["picks"][0]
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.set_default_timeout(300_000)  # a loaded 2-core machine: the first gallery section alone took 70 s
        page.goto(server)
        wait_idle(page)
        page.get_by_role("link", name="Gallery").click()
        page.get_by_role("heading", name="Gallery").first.wait_for()
        wait_idle(page)
        caption = f"{first['config']} / {first['class_name']} / seed {first['seed']}"
        page.get_by_text(caption, exact=True).first.wait_for()  # the thumbnail's caption
        page.locator(".st-key-gallery_open_classes_0").get_by_role("button", name="Explore").click()
        page.get_by_role("heading", name=re.compile("^Explore")).first.wait_for()
        page.get_by_text(f"Showing simulated {caption}").first.wait_for()
        wait_idle(page)
        browser.close()
