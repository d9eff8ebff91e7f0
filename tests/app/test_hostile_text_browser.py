r"""In a real Chromium, a checkpoint whose class names are ``<img src=x onerror=...>`` and
``![c](http:\\127.0.0.1:PORT\card.png)``, and a lens uploaded under a name holding both, run nothing and fetch
nothing: no ``onerror`` fires in the page or the scrubber's frame, no request reaches the image server the
names point at (nor ``x`` on the app's own origin), and the names are on screen as the text they are.

Without Chromium (or the playwright package) this skips with the reason, unless
``EQLENS_REQUIRE_BROWSER=1``, when it fails instead."""

from __future__ import annotations

import http.server
import threading

import pytest

from app.serve import CHROMIUM, CHROMIUM_ARGS, complete_scrubber, free_port, wait_idle

from .conftest import _missing_browser, ring_lens
from .test_pages import npy_bytes, write_tiny_checkpoint

pytestmark = pytest.mark.browser

PWNED = "() => [window.eqlensPwned, window.top.eqlensPwned]"
UPLOAD_TAIL = "<img src=x onerror=window.top.eqlensPwned=2>"


@pytest.fixture(scope="module")
def leak_server():
    """An image server on localhost that counts every request (what a remote image in a name would hit)."""
    hits: list[str] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 - http.server's name
            hits.append(self.path)
            self.send_response(404)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server.server_address[1], hits
    server.shutdown()


@pytest.fixture(scope="module")
def names(leak_server):
    port, _ = leak_server
    script = '<img src=x onerror="window.top.eqlensPwned=1">'
    image = rf"![c](http:\\127.0.0.1:{port}\card.png)"
    upload = rf"![f](http:\\127.0.0.1:{port}\file.png){UPLOAD_TAIL}.npy"
    return script, image, upload


@pytest.fixture(scope="module")
def served(tmp_path_factory, browser_turn, names):
    from app.serve import running_app

    reason = _missing_browser()
    if reason:
        import os

        if os.environ.get("EQLENS_REQUIRE_BROWSER") == "1":
            pytest.fail(f"EQLENS_REQUIRE_BROWSER=1 but {reason}")
        pytest.skip(reason)
    folder = tmp_path_factory.mktemp("checkpoints")
    script, image, _ = names
    # the preferred default checkpoint name: Explore opens on it, the scrubber draws its classes
    write_tiny_checkpoint(folder, "model_i_gcnn", "gcnn", "model_i", [script, image, "no_sub"])
    env = {"EQLENS_APP_TINY": "1", "OMP_NUM_THREADS": "1", "EQLENS_CHECKPOINT_DIR": str(folder),
           "EQLENS_RUNS_DIR": str(tmp_path_factory.mktemp("runs"))}
    with running_app(env) as url:
        yield url


def test_hostile_class_and_file_names_run_nothing_fetch_nothing_and_show_as_text(served, leak_server, names,
                                                                              tmp_path_factory):
    from playwright.sync_api import sync_playwright

    port, hits = leak_server
    script, image, upload = names
    requested: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1100})
        page.set_default_timeout(120_000)
        page.on("request", lambda request: requested.append(request.url))
        page.goto(served)
        wait_idle(page)
        frame = complete_scrubber(page)
        bars = frame.locator("#bars .prob span:first-child").all_text_contents()
        assert bars == [script, image, "no_sub"]  # the class names, as text
        assert frame.evaluate("() => document.querySelectorAll('#bars img, #views img, #top img').length") == 0
        # the lens uploaded under the hostile name
        page.get_by_role("radiogroup", name="Image").get_by_text("Upload").click()
        wait_idle(page)
        page.locator('.st-key-explore_image_upload [data-testid="stFileUploaderDropzoneInput"]').set_input_files(
            {"name": upload, "mimeType": "application/octet-stream", "buffer": npy_bytes(ring_lens().image)})
        wait_idle(page)
        page.wait_for_function("(tail) => document.body.innerText.includes(tail)", arg=UPLOAD_TAIL)
        complete_scrubber(page)
        page.wait_for_timeout(1500)  # time for any image or handler the names might have planted
        shot = tmp_path_factory.mktemp("shots") / "hostile_names.png"
        page.screenshot(path=str(shot), full_page=True)
        pwned = [page.evaluate(PWNED)] + [f.evaluate(PWNED) for f in page.frames if "scrub" in f.url]
        main_text = page.locator('[data-testid="stMain"]').inner_text()
        browser.close()
    assert all(v == [None, None] for v in pwned), pwned  # no onerror ran, in the page or the scrubber
    assert hits == [], hits  # the image server the names point at was never asked
    leaked = [u for u in requested if f":{port}" in u or u.rstrip("/").endswith("/x")]
    assert not leaked, leaked
    assert script in main_text and image in main_text  # the logits line names the classes as they are
    assert "upload ![f](http:" in main_text and f"file.png){UPLOAD_TAIL}.npy" in main_text  # the file's name
    print(f"screenshot: {shot}")
