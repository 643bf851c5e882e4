"""Who may use the page: a token off loopback, and CSRF protection for every action.

On loopback (the default) no token is asked. On any other address every request (pages,
the event stream, the media) carries the token: as `Authorization: Bearer …`, as the
cookie a first visit with `?token=…` sets, or in that query. Actions are POSTs whose form
repeats the value of a CSRF cookie (a double-submit cookie, `SameSite=Strict`), from a page
of the same origin.
"""

from __future__ import annotations

import ipaddress
import secrets
from collections.abc import Awaitable, Callable, MutableMapping
from http.cookies import SimpleCookie
from typing import Any
from urllib.parse import parse_qs

TOKEN_COOKIE = "videoarchiver_token"
CSRF_COOKIE = "videoarchiver_csrf"
CSRF_FIELD = "csrf"

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


def loopback(host: str) -> bool:
    """`127.0.0.1`, `::1`, `localhost`: only this machine can reach it."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def new_token() -> str:
    return secrets.token_urlsafe(24)


def _cookies(scope: Scope) -> dict[str, str]:
    jar: SimpleCookie = SimpleCookie()
    for name, value in scope.get("headers", []):
        if name == b"cookie":
            jar.load(value.decode("latin-1"))
    return {key: morsel.value for key, morsel in jar.items()}


def _header(scope: Scope, wanted: bytes) -> str:
    for name, value in scope.get("headers", []):
        if name == wanted:
            return str(value.decode("latin-1"))
    return ""


class TokenGate:
    """ASGI middleware: with a token set, nothing is served to a request without it."""

    def __init__(self, app: ASGIApp, token: str | None) -> None:
        self.app, self.token = app, token

    def _presented(self, scope: Scope) -> tuple[str | None, bool]:
        """The token the request carries, and whether it came in the query."""
        bearer = _header(scope, b"authorization")
        if bearer.startswith("Bearer "):
            return bearer.removeprefix("Bearer "), False
        query = parse_qs(scope.get("query_string", b"").decode("latin-1")).get("token")
        if query:
            return query[0], True
        return _cookies(scope).get(TOKEN_COOKIE), False

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or self.token is None:
            await self.app(scope, receive, send)
            return
        presented, in_query = self._presented(scope)
        if presented is None or not secrets.compare_digest(presented, self.token):
            await _plain(send, 401, b"a token is needed: open the address printed at start")
            return
        if in_query:  # keep it in a cookie, and out of the address bar and the history
            cookie = f"{TOKEN_COOKIE}={self.token}; Path=/; HttpOnly; SameSite=Strict"
            await _plain(send, 303, b"", [(b"location", scope["path"].encode()),
                                          (b"set-cookie", cookie.encode())])  # fmt: skip
            return
        await self.app(scope, receive, send)


async def _plain(
    send: Send, status: int, body: bytes, headers: list[tuple[bytes, bytes]] | None = None
) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"text/plain; charset=utf-8"), *(headers or [])],
        }
    )
    await send({"type": "http.response.body", "body": body})  # fmt: skip


def csrf_value(cookies: dict[str, str]) -> str:
    """The CSRF value a page's forms repeat: the cookie's, or a new one it then sets."""
    return cookies.get(CSRF_COOKIE) or secrets.token_urlsafe(24)


def csrf_cookie(value: str) -> str:
    return f"{CSRF_COOKIE}={value}; Path=/; HttpOnly; SameSite=Strict"


def csrf_ok(cookies: dict[str, str], form_value: str | None, origin: str, host: str) -> bool:
    """A POST is ours: its form repeats the CSRF cookie, and it comes from this origin."""
    cookie = cookies.get(CSRF_COOKIE)
    if not cookie or not form_value or not secrets.compare_digest(cookie, form_value):
        return False
    return not origin or origin.split("://", 1)[-1] == host
