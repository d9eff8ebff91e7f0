"""Start the app headless on a free port and wait until it answers: for the browser tests and the
screenshot script. ``with running_app(env) as url: ...``; the server is stopped on exit."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run", "--disable-dev-shm-usage"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def running_app(env: dict | None = None, timeout: float = 120.0):
    port = free_port()
    cmd = [sys.executable, "-m", "streamlit", "run", str(ROOT / "app" / "main.py"), "--server.headless", "true",
           "--server.port", str(port), "--server.address", "127.0.0.1", "--server.fileWatcherType", "none",
           "--browser.gatherUsageStats", "false"]
    proc = subprocess.Popen(cmd, cwd=ROOT, env={**os.environ, **(env or {})}, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + timeout
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"streamlit exited with {proc.returncode}:\n{proc.stdout.read()}")
            try:
                with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(f"streamlit did not answer on {url} within {timeout} s")
            time.sleep(0.3)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()


def wait_idle(page, timeout_ms: float = 120_000) -> None:
    """Wait until the app's script has finished (Streamlit's running indicator is gone)."""
    # The page title (st.title) is the first element every page writes.
    page.wait_for_selector('[data-testid="stMain"] h1', timeout=timeout_ms)
    page.wait_for_timeout(300)
    # Idle: the status widget says nothing about running, and no element is stale (fragment reruns
    # mark the elements they will replace with data-stale="true").
    page.wait_for_function(
        "() => { const s = document.querySelector('[data-testid=\"stStatusWidget\"]');"
        " return (!s || !s.innerText.includes('Running'))"
        " && !document.querySelector('[data-stale=\"true\"]'); }",
        timeout=timeout_ms)
    page.wait_for_timeout(200)


SET_SCRUB_ANGLE = ("(a) => { const s = document.getElementById('slider'); s.value = String(a);"
                   " s.dispatchEvent(new Event('input', {bubbles: true})); return document.body.dataset.angle; }")


def complete_scrubber(page, timeout_s: float = 180.0):
    """Explore's orbit scrubber: its component frame, once every frame of the orbit is there (polled: the
    iframe may still be navigating, or be replaced by a rerun, between two looks). Raises AssertionError
    when the orbit does not complete within ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        for frame in [f for f in page.frames if "scrub" in f.url]:
            try:
                if frame.evaluate("() => !!document.body && document.body.dataset.complete === 'true'"):
                    return frame
            except Exception:  # detached by a rerun: look again
                pass
        page.wait_for_timeout(250)
    raise AssertionError("the scrubber's orbit never completed")
