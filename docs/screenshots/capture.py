"""Screenshot every page of the app into docs/screenshots/ (Debian's Chromium + Playwright).

    python docs/screenshots/capture.py            # the shipped checkpoints, as a fresh checkout shows them
    EQLENS_APP_TINY=1 python docs/screenshots/capture.py   # quick, 33-px models

The app runs on a copy of checkpoints/ in a temporary folder, so the Train page's small run (for its
picture) never lands among the shipped checkpoints.
"""

from __future__ import annotations

import os
import re
import shutil
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1]))

from app.serve import CHROMIUM, CHROMIUM_ARGS, running_app, wait_idle  # noqa: E402


def select(page, key: str, option: str) -> None:
    page.locator(f".st-key-{key}").click()
    page.get_by_role("option", name=option, exact=True).click()
    wait_idle(page)


def shoot(page, name: str, ready: str | None = None, clip: dict | None = None) -> None:
    """Screenshot once ``ready`` (a text the finished page shows) is on screen and the app is idle;
    ``clip`` (playwright's x, y, width, height) keeps only that part of the page."""
    if ready:
        page.get_by_text(ready).first.wait_for()
    wait_idle(page)
    page.wait_for_timeout(1500)  # plotly draws after the script ends
    page.screenshot(path=str(HERE / f"{name}.png"), clip=clip)
    print("wrote", HERE / f"{name}.png")


def select_model(page, key: str, checkpoint: str) -> None:
    """Pick the checkpoint ``checkpoint`` (its label carries its run status after the name)."""
    page.locator(f".st-key-{key}").click()
    page.get_by_role("option", name=re.compile(rf"^{re.escape(checkpoint)} \(")).first.click()
    wait_idle(page)


def shoot_anatomy(page) -> None:
    """Misclassified's "Where the errors lie" (an evaluation on screen): the section, scrolled to."""
    page.get_by_text("Where the errors lie").first.scroll_into_view_if_needed()
    box = page.locator(".st-key-mis_anatomy_chart").bounding_box()
    top = max(0, box["y"] - 170)
    shoot(page, "misclassified_anatomy",
          clip={"x": 0, "y": top, "width": page.viewport_size["width"], "height": box["height"] + 250})


def main() -> None:
    from playwright.sync_api import sync_playwright

    shipped = Path(tempfile.mkdtemp(prefix="eqlens-shots-")) / "checkpoints"
    shutil.copytree(HERE.parents[1] / "checkpoints", shipped)
    env = {"EQLENS_CHECKPOINT_DIR": str(shipped), "EQLENS_APP_TINY": os.environ.get("EQLENS_APP_TINY", "0")}
    with running_app(env) as url, sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1500, "height": 1900})
        page.set_default_timeout(300_000)
        page.goto(url)
        wait_idle(page)
        # The default: the flagship as Explore opens it (a model trained on turned pictures opens on the picture;
        # a scene-only one on the turned sky), its group channels.
        shoot(page, "explore_sky", ready="logits:")
        page.locator(".st-key-explore_angle_btn_1 button").click()
        page.get_by_text("90°").first.wait_for()
        shoot(page, "explore_group_channels", ready="logits:")
        page.locator(".st-key-explore_view").get_by_text("Attributions").click()
        shoot(page, "explore_attributions", ready="attribution invariance error")
        select_model(page, "explore_model", "model_i_eqcvt")
        page.locator(".st-key-explore_view").get_by_text("Attention").click()
        shoot(page, "explore_attention", ready="logits:")

        page.get_by_role("link", name="Compare").click()
        wait_idle(page)
        shoot(page, "compare", ready="Both models over the orbit")

        page.get_by_role("link", name="Train").click()
        wait_idle(page)
        for key, value in (("train_epochs", "3"), ("train_size", "96")):
            field = page.locator(f".st-key-{key} input")
            field.fill(value)
            field.press("Enter")
            wait_idle(page)
        page.locator(".st-key-train_start button").click()
        page.get_by_text(re.compile(r"Training (finished|cancelled)")).wait_for()
        shoot(page, "train")

        page.get_by_role("link", name="Misclassified").click()
        wait_idle(page)
        page.locator(".st-key-mis_evaluate button").click()
        page.locator("[class*='st-key-mis_open_'] button").first.wait_for()
        shoot(page, "misclassified")
        field = page.locator(".st-key-mis_size input")  # the anatomy on the card's 3000 test lenses
        field.fill("3000")
        field.press("Enter")
        wait_idle(page)
        page.locator(".st-key-mis_evaluate button").click()
        page.locator("[class*='st-key-mis_open_'] button").first.wait_for()
        shoot_anatomy(page)

        page.set_viewport_size({"width": 1500, "height": 3200})  # the guide is long
        page.get_by_role("link", name="Learn").click()
        shoot(page, "learn", ready="6. Why a plain CNN is not invariant")
        browser.close()


if __name__ == "__main__":
    main()
