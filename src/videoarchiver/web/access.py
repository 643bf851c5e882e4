"""Who may use the page: this machine only, or a token; CSRF protection for every action.

On loopback (the default) no token is asked, but only requests naming the page by a
loopback host are answered: another site whose name a DNS rebinding points at 127.0.0.1
gets nothing. On any other address every request (pages, the event stream, the media)
carries the token: as `Authorization: Bearer …`, as the cookie a first visit with
`?token=…` sets, or in that query. Actions are POSTs whose form repeats the value of a CSRF
cookie (a double-submit cookie, `SameSite=Strict`), from a page of the same origin. Every
answer forbids framing and sends its address (which may hold the token) to no other site.
"""

from __future__ import annotations

import ipaddress
import secrets
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any
from urllib.parse import parse_qsl, quote, urlencode

from starlette.requests import cookie_parser

TOKEN_COOKIE = "videoarchiver_token"
CSRF_COOKIE = "videoarchiver_csrf"
CSRF_FIELD = "csrf"
TOKEN_PATTERN = r"^[A-Za-z0-9_-]{16,}$"  # as `secrets.token_urlsafe` makes them
SAFE_HEADERS = [
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"same-origin"),  # no-referrer would make POSTs say `Origin: null`
    (b"x-content-type-options", b"nosniff"),
]

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


def host_name(header: str) -> str:
    """The name in a Host header, without its port (`[::1]:8080` → `::1`)."""
    if header.startswith("["):
        return header[1:].partition("]")[0]
    return header.rpartition(":")[0] if header.count(":") == 1 else header


def new_token() -> str:
    return secrets.token_urlsafe(24)


def same(presented: str, expected: str) -> bool:
    """A constant-time comparison that any text may be given to (not only ASCII)."""
    return secrets.compare_digest(presented.encode(), expected.encode())


def _header(scope: Scope, wanted: bytes) -> str:
    for name, value in scope.get("headers", []):
        if name == wanted:
            return str(value.decode("latin-1"))
    return ""


def token_cookie(scope: Scope) -> str:
    """The token's cookie, one per port: cookies ignore ports, and two roots' pages may
    run on one host."""
    server = scope.get("server") or ("", None)
    return f"{TOKEN_COOKIE}_{server[1] or 80}"


class AccessGate:
    """ASGI middleware in front of everything the page serves."""

    def __init__(self, app: ASGIApp, token: str | None) -> None:
        self.app, self.token = app, token

    def _presented(self, scope: Scope) -> tuple[str | None, bool]:
        """The token the request carries, and whether it came in the query."""
        bearer = _header(scope, b"authorization")
        if bearer.startswith("Bearer "):
            return bearer.removeprefix("Bearer "), False
        query = dict(parse_qsl(scope.get("query_string", b"").decode("latin-1")))
        if "token" in query:
            return query["token"], True
        return cookie_parser(_header(scope, b"cookie")).get(token_cookie(scope)), False

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self.app(scope, receive, send)
            return
        if scope["type"] != "http":  # no websockets here
            return
        if self.token is None:
            if not loopback(host_name(_header(scope, b"host"))):
                await _plain(send, 403, b"this page answers only to this machine's names")
                return
        else:
            presented, in_query = self._presented(scope)
            if presented is None or not same(presented, self.token):
                await _plain(send, 401, b"a token is needed: open the address printed at start")
                return
            if in_query:  # keep it in a cookie, out of the address bar and the history
                await _plain(send, 303, b"", [
                    (b"location", _without_token(scope).encode()),
                    (b"set-cookie", f"{token_cookie(scope)}={self.token}; Path=/; HttpOnly;"
                                    " SameSite=Lax".encode()),
                ])  # fmt: skip
                return

        async def safe_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *SAFE_HEADERS]
            await send(message)

        await self.app(scope, receive, safe_send)


def _without_token(scope: Scope) -> str:
    """The address asked for, its token left out: a path on this origin only. It has one
    leading slash and every other character a browser might read as one (a backslash, a
    tab) percent-encoded, so no `//host` or `/\\host` can send the browser to another site."""
    path = "/" + quote(str(scope["path"]).lstrip("/"))
    query = [(k, v) for k, v in parse_qsl(scope.get("query_string", b"").decode("latin-1"))
             if k != "token"]  # fmt: skip
    return path + (f"?{urlencode(query)}" if query else "")


async def _plain(
    send: Send, status: int, body: bytes, headers: list[tuple[bytes, bytes]] | None = None
) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"text/plain; charset=utf-8"),
                *SAFE_HEADERS,
                *(headers or []),
            ],
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
    if not cookie or not form_value or not same(cookie, form_value):
        return False
    return not origin or origin.split("://", 1)[-1] == host
