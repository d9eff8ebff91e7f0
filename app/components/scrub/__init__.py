"""The orbit scrubber: a small Streamlit component (static HTML/JS in ``frontend/``, no build step,
no CDN) that receives every precomputed frame of an orbit at once and swaps them in the browser
while its slider moves, so a drag never waits for the server.

``scrub(payload)`` renders it; its value is ``{"angle": a, "nonce": n}`` when the reader asks for
the precise angle ``a`` (computed on the server), else None.
"""

from __future__ import annotations

from pathlib import Path

import streamlit.components.v1 as components

FRONTEND = Path(__file__).resolve().parent / "frontend"
_component = components.declare_component("eqlens_scrub", path=str(FRONTEND))


def scrub(payload: dict, key: str | None = None):
    """Render the scrubber for ``payload`` (see :func:`app.views.explore.scrub_payload`)."""
    return _component(payload=payload, key=key, default=None)
