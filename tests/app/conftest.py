"""Shared set-up of the app tests: tiny sizes, a private checkpoint folder, AppTest factories."""

from __future__ import annotations

import os
from pathlib import Path

# Before app.settings is imported anywhere in this process: tiny models, images and test sets.
os.environ["EQLENS_APP_TINY"] = "1"
os.environ.setdefault("STREAMLIT_SERVER_FILE_WATCHER_TYPE", "none")
# The app shows users no error details (.streamlit/config.toml); a failing test shows its own in full.
os.environ.setdefault("STREAMLIT_CLIENT_SHOW_ERROR_DETAILS", "full")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
MAIN = str(ROOT / "app" / "main.py")


@pytest.fixture
def checkpoint_dir(tmp_path, monkeypatch):
    """An empty checkpoint folder for the app, and an app runs folder beside it (``runs_dir``): training in
    tests never writes into the repo."""
    from app import settings

    folder = tmp_path / "checkpoints"
    folder.mkdir()
    monkeypatch.setattr(settings, "CHECKPOINT_DIR", folder)
    monkeypatch.setattr(settings, "RUNS_DIR", tmp_path / "runs" / "app")
    return folder


@pytest.fixture
def runs_dir(checkpoint_dir):
    """Where the Train page writes its runs in a test (not created until a run is)."""
    from app import settings

    return settings.RUNS_DIR


@pytest.fixture
def app_test(checkpoint_dir):
    """``app_test(page=None, **session)`` -> an AppTest of the whole app, already run once."""
    from streamlit.testing.v1 import AppTest

    def make(page: str | None = None, **session):
        at = AppTest.from_file(MAIN, default_timeout=180)
        for key, value in session.items():
            at.session_state[key] = value
        at.run()
        if page is not None:
            at.switch_page(page).run()
        return at

    return make


def ring_lens(size: int = 41, offset: int = 5):
    """A small lopsided Einstein-ring-like image (not symmetric under any rotation)."""
    from app.lenses import LensImage

    yy, xx = np.mgrid[:size, :size] - size // 2
    image = 100 * np.exp(-((np.hypot(yy, xx) - size / 4) ** 2) / 6) * (1 + (xx > offset)) + (yy < -offset) * 30
    return LensImage(image.astype(np.float32), "test ring", "cdm")


def no_exception(at) -> None:
    messages = [e.message for e in at.exception]
    assert not messages, messages


@pytest.fixture(scope="module")
def browser_turn():
    """One browser module at a time across xdist workers: a Streamlit server plus Chromium per module,
    two at once on two cores, starve each other past the tests' timeouts. An exclusive lock on a file in
    the system's temporary folder, held for the module's duration."""
    import fcntl
    import tempfile

    with open(Path(tempfile.gettempdir()) / "eqlens-browser-tests.lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _missing_browser() -> str | None:
    from app.serve import CHROMIUM

    if not Path(CHROMIUM).exists():
        return f"no Chromium at {CHROMIUM} (apt-get install -y chromium)"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "the playwright package is not installed"
    return None


@pytest.fixture(scope="module")
def server(tmp_path_factory, browser_turn):
    """The app served by ``streamlit run`` (tiny sizes, an empty checkpoint folder) for one browser test
    module; without Chromium or playwright the module skips, or fails under ``EQLENS_REQUIRE_BROWSER=1``."""
    from app.serve import running_app

    reason = _missing_browser()
    if reason:
        if os.environ.get("EQLENS_REQUIRE_BROWSER") == "1":
            pytest.fail(f"EQLENS_REQUIRE_BROWSER=1 but {reason}")
        pytest.skip(reason)
    env = {"EQLENS_APP_TINY": "1", "OMP_NUM_THREADS": "1",
           "EQLENS_CHECKPOINT_DIR": str(tmp_path_factory.mktemp("checkpoints")),
           "EQLENS_RUNS_DIR": str(tmp_path_factory.mktemp("runs"))}
    with running_app(env) as url:
        yield url
