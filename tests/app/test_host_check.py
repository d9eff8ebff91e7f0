"""DNS rebinding: a request that names the app under another host (``Host: evil.example:PORT`` with a
matching ``Origin``, as a page on a rebinding domain sends) is refused, on the WebSocket from the first
connection on and on every HTTP route once the app has run; the same request under 127.0.0.1 is
served. Uncaught exceptions show no details to the browser.

The HTTP half needs one page load (the check is installed by app/main.py), done in Chromium: without it
that test skips with the reason, unless ``EQLENS_REQUIRE_BROWSER=1``."""

from __future__ import annotations

import base64
import os
import socket
import urllib.parse

import pytest

from .conftest import ROOT, _missing_browser

EVIL = "evil.example"


@pytest.fixture(scope="module")
def served(tmp_path_factory, browser_turn):
    from app.serve import running_app

    env = {"EQLENS_APP_TINY": "1", "OMP_NUM_THREADS": "1",
           "EQLENS_CHECKPOINT_DIR": str(tmp_path_factory.mktemp("checkpoints")),
           "EQLENS_RUNS_DIR": str(tmp_path_factory.mktemp("runs"))}
    with running_app(env) as url:
        yield url


def status_of(url: str, path: str, host: str, websocket: bool = False) -> int:
    """The HTTP status the server answers to ``GET path`` sent with ``Host: host`` (and, for a WebSocket
    upgrade, ``Origin: http://host``): 101 switches to the WebSocket, 403 refuses."""
    parts = urllib.parse.urlsplit(url)
    lines = [f"GET {path} HTTP/1.1", f"Host: {host}", "Connection: " + ("Upgrade" if websocket else "close")]
    if websocket:
        key = base64.b64encode(os.urandom(16)).decode()
        lines += ["Upgrade: websocket", f"Sec-WebSocket-Key: {key}", "Sec-WebSocket-Version: 13",
                  f"Origin: http://{host}", "Sec-WebSocket-Protocol: streamlit"]
    with socket.create_connection((parts.hostname, parts.port), timeout=20) as conn:
        conn.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        status_line = conn.makefile("rb").readline().decode()
    return int(status_line.split()[1])


def test_a_websocket_under_another_host_is_refused_and_under_localhost_accepted(served):
    port = urllib.parse.urlsplit(served).port
    assert status_of(served, "/_stcore/stream", f"{EVIL}:{port}", websocket=True) == 403
    assert status_of(served, "/_stcore/stream", f"127.0.0.1:{port}", websocket=True) == 101
    assert status_of(served, "/_stcore/stream", f"localhost:{port}", websocket=True) == 101


def test_every_http_route_under_another_host_is_refused_once_the_app_has_run(served):
    reason = _missing_browser()
    if reason:
        if os.environ.get("EQLENS_REQUIRE_BROWSER") == "1":
            pytest.fail(f"EQLENS_REQUIRE_BROWSER=1 but {reason}")
        pytest.skip(reason)
    from playwright.sync_api import sync_playwright

    from app.serve import CHROMIUM, CHROMIUM_ARGS, wait_idle

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page()
        page.set_default_timeout(120_000)
        page.goto(served)
        wait_idle(page)
        browser.close()
    port = urllib.parse.urlsplit(served).port
    for path in ("/", "/_stcore/health", "/_stcore/host-config", "/static/../index.html"):
        assert status_of(served, path, f"{EVIL}:{port}") == 403, path
    assert status_of(served, "/", f"127.0.0.1:{port}") == 200
    assert status_of(served, "/_stcore/health", f"localhost:{port}") == 200


def test_the_config_names_the_local_hosts_and_shows_no_error_details():
    import tomllib

    config = tomllib.loads((ROOT / ".streamlit" / "config.toml").read_text())
    assert config["server"]["allowedHosts"] == ["localhost", "127.0.0.1", "::1"]
    assert config["client"]["showErrorDetails"] == "none"
