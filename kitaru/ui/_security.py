"""Access to the dashboard: a per-launch token, a session cookie, and CSRF checks.

The token printed at launch is the only way in. Opening ``/?token=...`` swaps it for an
HttpOnly, SameSite=Strict cookie and redirects to the same page without the token, so
it does not linger in the address bar or the history. Programs send it as
``Authorization: Bearer <token>`` instead. A POST sent with the cookie must also carry
the CSRF value the pages embed (a form field or the ``X-Kitaru-CSRF`` header) and, when
the browser names one, an ``Origin`` that is this server's own: another site can make a
browser send the cookie, but can read neither value.
"""

from __future__ import annotations

import hmac
import secrets
import time
from dataclasses import dataclass, field
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["CSRF_FIELD", "CSRF_HEADER", "AccessGuard", "Credentials", "csrf_ok"]

CSRF_FIELD = "csrf"
CSRF_HEADER = "x-kitaru-csrf"

# Headers on every answer: scripts and styles only from this server, no framing, and
# no referrer sent to other sites. (Not "no-referrer": with it a browser sends
# "Origin: null" on the dashboard's own form posts, and the origin check needs it.)
_HEADERS = {
    "content-security-policy": (
        "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
        "img-src 'self' data:; frame-ancestors 'none'; form-action 'self'; base-uri 'none'"
    ),
    "x-content-type-options": "nosniff",
    "referrer-policy": "same-origin",
    "x-frame-options": "DENY",
    "cache-control": "no-store",
}


@dataclass(frozen=True)
class Credentials:
    """The secrets of one launch: the access token and the CSRF value pages embed."""

    token: str = field(default_factory=lambda: secrets.token_urlsafe(32))
    csrf: str = field(default_factory=lambda: secrets.token_urlsafe(32))
    cookie_name: str = "kitaru_ui"

    def token_matches(self, given: str | None) -> bool:
        return given is not None and hmac.compare_digest(given.encode(), self.token.encode())


def _bearer(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    return value.strip() if scheme.lower() == "bearer" else None


def csrf_ok(request: Request, credentials: Credentials, submitted: str | None) -> bool:
    """A state-changing request is the dashboard's own (or a program's with the token)."""
    if credentials.token_matches(_bearer(request)):
        return True  # a browser never adds this header by itself
    origin = request.headers.get("origin")
    if origin is not None and origin != f"{request.url.scheme}://{request.url.netloc}":
        return False
    given = submitted if submitted is not None else request.headers.get(CSRF_HEADER)
    return given is not None and hmac.compare_digest(given.encode(), credentials.csrf.encode())


class AccessGuard:
    """ASGI middleware: every request needs the token (query once, then cookie or header)."""

    def __init__(self, app: ASGIApp, credentials: Credentials) -> None:
        self._app = app
        self._credentials = credentials

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        request = Request(scope)
        creds = self._credentials
        query_token = request.query_params.get("token")
        if query_token is not None and creds.token_matches(query_token):
            response: Response = self._enter(request)
        elif creds.token_matches(request.cookies.get(creds.cookie_name)) or creds.token_matches(
            _bearer(request)
        ):
            await self._app(scope, receive, _with_headers(send, time.perf_counter()))
            return
        else:
            response = _refused(request)
        for name, value in _HEADERS.items():
            response.headers[name] = value
        await response(scope, receive, send)

    def _enter(self, request: Request) -> Response:
        """Set the session cookie and send the browser to the page without the token."""
        rest = [(k, v) for k, v in request.query_params.multi_items() if k != "token"]
        target = request.url.path + (f"?{urlencode(rest)}" if rest else "")
        response = RedirectResponse(target, status_code=303)
        response.set_cookie(
            self._credentials.cookie_name,
            self._credentials.token,
            httponly=True,
            samesite="strict",
            path="/",
        )
        return response


def _refused(request: Request) -> Response:
    message = (
        "This kitaru ui needs its access token: open the URL that `kitaru ui` printed "
        "(it ends in ?token=...), or send Authorization: Bearer <token>."
    )
    if request.url.path.startswith("/api/") or "text/html" not in request.headers.get("accept", ""):
        return JSONResponse({"error": message, "type": "Unauthorized"}, status_code=401)
    page = f"<!doctype html><title>kitaru ui</title><h1>Access token needed</h1><p>{message}</p>"
    return HTMLResponse(page, status_code=401)


def _with_headers(send: Send, started: float) -> Send:
    """Add the security headers, and the time the answer took to make (Server-Timing)."""

    async def sending(message: Message) -> None:
        if message["type"] == "http.response.start":
            headers = list(message.get("headers", []))
            took_ms = (time.perf_counter() - started) * 1e3
            headers.append((b"server-timing", f"app;dur={took_ms:.1f}".encode()))
            present = {bytes(name).lower() for name, _ in headers}
            for name, value in _HEADERS.items():
                if name.encode() not in present:
                    headers.append((name.encode(), value.encode()))
            message = {**message, "headers": headers}
        await send(message)

    return sending
