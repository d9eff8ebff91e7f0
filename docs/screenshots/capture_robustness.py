"""Screenshot Misclassified's robustness chart ("Where does this model stop working?") for a checkpoint into
docs/screenshots/misclassified_robustness.png (Debian's Chromium + Playwright; reads docs/robustness.json).

    python docs/screenshots/capture_robustness.py [model_i_flagship]
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1]))

from app.serve import CHROMIUM, CHROMIUM_ARGS, running_app, wait_idle  # noqa: E402


def main(checkpoint: str = "model_i_flagship") -> None:
    from playwright.sync_api import sync_playwright

    with running_app() as url, sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1500, "height": 1900})
        page.set_default_timeout(300_000)
        page.goto(url)
        wait_idle(page)
        page.get_by_role("link", name="Misclassified").click()
        wait_idle(page)
        models = page.locator("[class*='st-key-'][class*='model']").first
        if checkpoint not in (models.text_content() or ""):
            models.click()
            page.get_by_role("option", name=re.compile(rf"^{re.escape(checkpoint)} \(")).first.click()
            wait_idle(page)
        page.get_by_text("Where does this model stop working?").first.scroll_into_view_if_needed()
        chart = page.locator(".st-key-robustness_chart")
        chart.wait_for()
        page.wait_for_timeout(1500)  # plotly draws after the script ends
        box = chart.bounding_box()
        out = HERE / "misclassified_robustness.png"
        page.screenshot(path=str(out), clip={"x": 0, "y": max(0, box["y"] - 70), "width": page.viewport_size["width"],
                                             "height": box["height"] + 160})
        print("wrote", out)
        browser.close()


if __name__ == "__main__":
    main(*sys.argv[1:])
