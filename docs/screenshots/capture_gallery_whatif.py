"""Screenshot the Gallery and What-if pages into docs/screenshots/ and time them (Debian's Chromium + Playwright).

    python docs/screenshots/capture_gallery_whatif.py [--whatif-only]

On the shipped checkpoints (a copy, as capture.py does). Prints the times it measured: the Gallery's load (from the
click in the navigation to the first section's thumbnails painted, first visit and again), and on What-if, the time
from a theta_E slider key press to the new rendering's reading on screen (the caption after it), on the flagship
with Model I no_sub seed 1004 over the 1 % that turns its reading from no_sub to cdm.
"""

from __future__ import annotations

import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1]))
sys.path.insert(0, str(HERE))

from capture import select, shoot  # noqa: E402

from app.serve import CHROMIUM, CHROMIUM_ARGS, running_app, wait_idle  # noqa: E402

IMAGES_PAINTED = ("() => { const imgs = [...document.querySelectorAll('[data-testid=\"stMain\"] img')];"
                  " return imgs.length >= 9 && imgs.every(i => i.complete && i.naturalWidth > 0); }")


def open_gallery(page) -> float:
    began = time.perf_counter()
    page.get_by_role("link", name="Gallery").click()
    page.get_by_role("heading", name="Gallery").first.wait_for()
    page.wait_for_function(IMAGES_PAINTED, timeout=300_000)
    seconds = time.perf_counter() - began
    wait_idle(page)
    return seconds


def prediction(page) -> str:
    return page.locator(".st-key-whatif_prediction").inner_text()


def timing(page) -> str:
    return page.locator(".st-key-whatif_timing").inner_text()


def main() -> None:
    from playwright.sync_api import sync_playwright

    shipped = Path(tempfile.mkdtemp(prefix="eqlens-shots-")) / "checkpoints"
    shutil.copytree(HERE.parents[1] / "checkpoints", shipped)
    with running_app({"EQLENS_CHECKPOINT_DIR": str(shipped), "EQLENS_APP_TINY": "0", "OMP_NUM_THREADS": "1"}) as url, \
            sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1500, "height": 1900})
        page.set_default_timeout(300_000)
        page.goto(url)
        wait_idle(page)
        if "--whatif-only" not in sys.argv:
            gallery_shot(page)
        whatif_shot(page)
        browser.close()


def gallery_shot(page) -> None:
    first = open_gallery(page)
    page.locator(".st-key-gallery_section").get_by_text("gets wrong").click()  # the flagship's mistakes
    wait_idle(page)
    shoot(page, "gallery")
    page.get_by_role("link", name="Learn").click()
    wait_idle(page)
    again = open_gallery(page)
    print(f"gallery: the first section's thumbnails painted {first:.2f} s after the click (first visit), "
          f"{again:.2f} s (cached)", flush=True)


def whatif_shot(page) -> None:
    page.get_by_role("link", name="What if").click()
    wait_idle(page)
    page.get_by_text("model_i_flagship (checkpoint)").first.wait_for()  # the default model
    select(page, "whatif_class_model_i", "no_sub")
    seed = page.locator(".st-key-whatif_seed input")
    seed.fill("1004")
    seed.press("Enter")
    wait_idle(page)
    page.locator(".st-key-whatif_timing").wait_for()
    thumb = page.locator(".st-key-whatif_slider_theta_E input").first  # react-aria: a hidden range input
    times = []
    for _ in range(26):  # 26 steps of 0.0005": 1.01 x 1.2815"
        before = timing(page)
        thumb.focus()
        began = time.perf_counter()
        page.keyboard.press("ArrowRight")
        page.wait_for_function("(b) => { const e = document.querySelector('.st-key-whatif_timing');"
                               " return e && e.innerText !== b; }", arg=before, timeout=120_000)
        times.append(time.perf_counter() - began)
        page.wait_for_timeout(100)
    wait_idle(page)
    print(f"what-if: key press to new prediction on screen, {len(times)} moves: median "
          f"{statistics.median(times) * 1e3:.0f} ms, max {max(times) * 1e3:.0f} ms")
    print("what-if now says:", prediction(page).replace("\n", " | "), "|", timing(page), flush=True)
    shoot(page, "whatif", clip={"x": 0, "y": 0, "width": 1500, "height": 1150})


if __name__ == "__main__":
    main()
