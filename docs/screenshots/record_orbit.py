"""Record Explore's orbit scrubber as an animated GIF: the slider dragged once around the orbit.

    python docs/screenshots/record_orbit.py                     # the app's default model (the flagship)
    python docs/screenshots/record_orbit.py --frames 36 --out docs/screenshots/orbit.gif

Starts the app headless on its embedded defaults, waits until the scrubber holds every frame of the
orbit, then sets the scrubber's slider to each angle (the same ``input`` event a dragging hand
fires), screenshots the scrubber's frame and writes the pictures as one looping GIF (each frame on
its own 96-colour palette: the noisy lens pictures make a lossless animation several times larger).
"""

from __future__ import annotations

import argparse
import io
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1]))

from app.serve import CHROMIUM, CHROMIUM_ARGS, SET_SCRUB_ANGLE, complete_scrubber, running_app, wait_idle  # noqa: E402


def record(frames: int, width: int, scale: float) -> list:
    """``frames`` screenshots (PIL images) of the scrubber at evenly spaced angles over 360 deg."""
    from PIL import Image
    from playwright.sync_api import sync_playwright

    pictures = []
    with running_app({}) as url, sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": width, "height": 1400})
        page.set_default_timeout(300_000)
        page.goto(url)
        wait_idle(page)
        frame = complete_scrubber(page, 300.0)
        element = page.locator("iframe[src*='scrub']").first
        element.scroll_into_view_if_needed()
        for k in range(frames):
            angle = 360.0 * k / frames
            frame.evaluate(SET_SCRUB_ANGLE, angle)
            page.wait_for_timeout(80)  # a painted frame, as a hand would see it
            shot = Image.open(io.BytesIO(element.screenshot())).convert("RGB")
            if scale != 1.0:
                shot = shot.resize((round(shot.width * scale), round(shot.height * scale)), Image.LANCZOS)
            pictures.append(shot)
            print(f"frame {k + 1}/{frames}: {angle:.1f} deg", flush=True)
        browser.close()
    return pictures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=36, help="angles over the orbit (default 36: every 10 deg)")
    parser.add_argument("--ms", type=int, default=120, help="milliseconds per frame of the animation")
    parser.add_argument("--width", type=int, default=1400, help="browser viewport width, px")
    parser.add_argument("--scale", type=float, default=0.6, help="shrink the pictures by this factor")
    parser.add_argument("--colors", type=int, default=96, help="palette size of each frame")
    parser.add_argument("--out", type=Path, default=HERE / "orbit.gif")
    args = parser.parse_args()
    from PIL import Image

    pictures = [p.quantize(colors=args.colors, method=Image.Quantize.MEDIANCUT)
                for p in record(args.frames, args.width, args.scale)]
    pictures[0].save(args.out, save_all=True, append_images=pictures[1:], duration=args.ms, loop=0,
                     optimize=True)
    print(f"wrote {args.out} ({args.out.stat().st_size / 1e6:.2f} MB, {len(pictures)} frames)")


if __name__ == "__main__":
    main()
