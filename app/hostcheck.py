"""The Host check against DNS rebinding (no st.* here; docs/security.md).

A page on a rebinding domain (``evil.example`` resolving to 127.0.0.1) is same-origin with the app under
that name: its WebSocket carries ``Host: evil.example:8501`` and a matching ``Origin``, which Streamlit
accepts unless ``server.allowedHosts`` lists the names the app is reached by. ``.streamlit/config.toml``
lists localhost, 127.0.0.1 and ::1, so Streamlit's own check refuses any other Host on
``/_stcore/stream`` from the first connection on. Its option covers only the WebSocket (and the agent
routes); :func:`install`, called by ``app/main.py``, refuses every HTTP request of the same server whose
Host is not in that list too (403), with the same rule (ports ignored, ``*.domain`` wildcards, ``*``: any).
To serve the app under another name, add it: ``--server.allowedHosts localhost --server.allowedHosts
lab.example.org`` (or the config file).
"""

from __future__ import annotations

import logging

_LOG = logging.getLogger("eqlens.app.hostcheck")
_MARK = "_eqlens_host_check"


def host_allowed(host: str | None) -> bool:
    """Whether ``host`` (a Host header, port and all) is one the server may be reached by: Streamlit's own
    rule over ``server.allowedHosts``."""
    from streamlit.web.server.starlette.starlette_websocket import is_host_allowed

    return is_host_allowed(host)


def _host_of(scope) -> str | None:
    for name, value in scope.get("headers") or ():
        if name == b"host":
            return value.decode("latin-1")
    return None


async def _refuse(scope, receive, send) -> None:
    if scope["type"] == "websocket":
        await send({"type": "websocket.close", "code": 1008})
        return
    body = b"refused: this server is not reached under that host name (server.allowedHosts)\n"
    await send({"type": "http.response.start", "status": 403,
                "headers": [(b"content-type", b"text/plain; charset=utf-8"),
                            (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


def install() -> bool:
    """Put the check in front of the running Starlette application (Streamlit's server), once per process;
    True when it was put in now. Every request that reaches the app afterwards, HTTP or WebSocket, passes
    it first. The class's ``__call__`` is wrapped, since Streamlit builds its application inside the
    server and hands out no handle to it; the one Starlette application in this process is Streamlit's."""
    from starlette.applications import Starlette

    original = Starlette.__call__
    if getattr(original, _MARK, False):
        return False

    async def checked(self, scope, receive, send):
        if scope.get("type") in ("http", "websocket") and not host_allowed(_host_of(scope)):
            _LOG.warning("refused a %s request for %s with Host %r", scope["type"], scope.get("path"),
                         _host_of(scope))
            await _refuse(scope, receive, send)
            return
        await original(self, scope, receive, send)

    setattr(checked, _MARK, True)
    Starlette.__call__ = checked
    return True
