"""What every request to the web server passes before anything reads its body (an ASGI middleware).

In order: the Host header (without a token, only this machine's names, so a web page elsewhere
cannot reach a loopback server through DNS rebinding); the Origin of a request that changes
something (a page on another site cannot post a form here); the token, when one is set (a
`Authorization: Bearer` header, or the cookie that `/login` sets for a browser); then the body's
size, from its Content-Length and again while it streams in, so a request over its limit is
refused before the server spools it to disk. `/api/health` and `/login` need no token.
"""
from __future__ import annotations

import asyncio
import hashlib
import hmac
import html
import json
import secrets
from dataclasses import dataclass
from urllib.parse import parse_qs, urlsplit

LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})
PUBLIC_PATHS = ("/api/health", "/login")
COOKIE = "imgsearch_session"
LOGIN_BODY_LIMIT = 4096
FAILED_LOGIN_DELAY_S = 0.5  # slows down guessing; a token should be long and random anyway
UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


@dataclass(frozen=True)
class Policy:
    """Who may ask what of the server: its token (None: no token), the Host names it answers
    (None: any), and the body limit for each path prefix (the first that matches; else `body_limit`)."""

    token: str | None
    hosts: frozenset[str] | None
    body_limits: tuple[tuple[str, int], ...] = ()
    body_limit: int = 1 << 20

    def limit_for(self, path: str) -> int:
        return next((limit for prefix, limit in self.body_limits if path.startswith(prefix)), self.body_limit)

    @property
    def session(self) -> str:
        """The cookie a browser gets for the token: derived from it, so the cookie is not the token."""
        return hmac.new(self.token.encode(), b"imgsearch-session", hashlib.sha256).hexdigest()


def host_name(value: str) -> str:
    """`example.org:8000` -> `example.org`; `[::1]:8000` -> `::1`."""
    value = value.strip().lower()
    if value.startswith("["):
        return value[1:].split("]", 1)[0]
    return value.rsplit(":", 1)[0] if value.count(":") == 1 else value


def hosts_for(bind: str, token: str | None) -> frozenset[str] | None:
    """Host names a server bound to `bind` answers: any with a token; else loopback names (and
    the bound address itself when it is not a wildcard)."""
    if token:
        return None
    if bind in ("0.0.0.0", "::", ""):
        return None  # exposed without a token: asked for explicitly (`--allow-anyone`)
    return LOOPBACK_HOSTS | {host_name(bind)}


class Guard:
    """ASGI middleware applying a `Policy` in front of `app`."""

    def __init__(self, app, policy: Policy):
        self.app, self.policy = app, policy

    async def __call__(self, scope, receive, send):
        if scope["type"] not in ("http", "websocket"):
            return await self.app(scope, receive, send)
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        refusal = self.refusal(scope, headers)
        if refusal:
            return await self.refuse(scope, send, *refusal)
        if scope["type"] == "websocket":
            return await self.app(scope, receive, send)
        if scope["path"] == "/login":
            return await self.login(scope, receive, send, headers)
        limit = self.policy.limit_for(scope["path"])
        declared = headers.get("content-length", "0")
        if not declared.isdigit() or int(declared) > limit:
            return await respond(send, 413, {"error": f"the request body is over the limit of {limit:,} bytes"})
        return await self.pass_bounded(scope, receive, send, limit)

    def refusal(self, scope, headers) -> tuple[int, str] | None:
        """(status, reason) when the request is refused before its body is read; None to go on."""
        hosts = self.policy.hosts
        if hosts is not None and host_name(headers.get("host", "")) not in hosts:
            return 421, f"this server answers only to {', '.join(sorted(hosts))} (it has no token)"
        if self.cross_site(scope, headers):
            return 403, "a request from another site's page is refused"
        if self.policy.token and scope["path"] not in PUBLIC_PATHS and not self.authorized(headers):
            return 401, "a valid `Authorization: Bearer <token>` header is required (in a browser: log in at /login)"
        return None

    @staticmethod
    def cross_site(scope, headers) -> bool:
        """A state-changing request (or a websocket) sent by a page of another origin."""
        if scope["type"] == "http" and scope["method"] not in UNSAFE_METHODS:
            return False
        if headers.get("sec-fetch-site") == "cross-site":
            return True
        origin = headers.get("origin")
        if origin is None:
            return False  # not a browser's cross-origin request (browsers always send Origin then)
        return origin == "null" or urlsplit(origin).netloc.lower() != headers.get("host", "").lower()

    def authorized(self, headers) -> bool:
        scheme, _, credentials = headers.get("authorization", "").partition(" ")
        if scheme.lower() == "bearer" and secrets.compare_digest(credentials.encode(), self.policy.token.encode()):
            return True
        cookie = cookies(headers.get("cookie", "")).get(COOKIE, "")
        return secrets.compare_digest(cookie.encode(), self.policy.session.encode())

    async def refuse(self, scope, send, status: int, reason: str):
        if scope["type"] == "websocket":
            return await send({"type": "websocket.close", "code": 1008, "reason": reason[:120]})
        wants_page = scope["method"] == "GET" and scope["path"] == "/"
        if status == 401 and wants_page:  # a browser opening the app: show the login form
            return await respond(send, 303, b"", [(b"location", b"/login")])
        extra = [(b"www-authenticate", b"Bearer")] if status == 401 else []
        return await respond(send, status, {"error": reason}, extra)

    async def pass_bounded(self, scope, receive, send, limit: int):
        """Run the app with a body that may not grow past `limit`: past it, answer 413 and let the
        app see a disconnected client (whatever it answers then is dropped)."""
        state = {"read": 0, "refused": False}

        async def bounded_receive():
            message = await receive()
            if message["type"] == "http.request":
                state["read"] += len(message.get("body", b""))
                if state["read"] > limit and not state["refused"]:
                    state["refused"] = True
                    await respond(send, 413, {"error": f"the request body is over the limit of {limit:,} bytes"})
                    return {"type": "http.disconnect"}
            return message

        async def guarded_send(message):
            if not state["refused"]:
                await send(message)

        try:
            await self.app(scope, bounded_receive, guarded_send)
        except Exception:
            if not state["refused"]:
                raise  # the app's own failure (a refused body is not one)

    async def login(self, scope, receive, send, headers):
        """GET: a form asking for the token; POST: check it, set the session cookie, go to the app."""
        if scope["method"] != "POST":
            return await respond(send, 200, login_page(self.policy.token is not None), [], "text/html")
        body = await read_small_body(receive, LOGIN_BODY_LIMIT)
        token = (parse_qs((body or b"").decode("utf-8", "replace")).get("token") or [""])[0]
        if not self.policy.token:
            return await respond(send, 303, b"", [(b"location", b"/")])
        if body is None or not secrets.compare_digest(token.encode(), self.policy.token.encode()):
            await asyncio.sleep(FAILED_LOGIN_DELAY_S)
            return await respond(send, 401, login_page(True, "That token is not this server's."), [], "text/html")
        cookie = f"{COOKIE}={self.policy.session}; HttpOnly; SameSite=Strict; Path=/"
        secure = "; Secure" if scope.get("scheme") == "https" or headers.get("x-forwarded-proto") == "https" else ""
        return await respond(send, 303, b"", [(b"location", b"/"), (b"set-cookie", (cookie + secure).encode())])


def cookies(header: str) -> dict[str, str]:
    pairs = (part.strip().partition("=") for part in header.split(";") if "=" in part)
    return {name: value for name, _, value in pairs}


async def read_small_body(receive, limit: int) -> bytes | None:
    """The whole body, or None once it passes `limit` bytes."""
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if len(body) > limit:
            return None
        if not message.get("more_body"):
            return body


async def respond(send, status: int, body, headers=(), content_type: str = "application/json"):
    data = json.dumps(body).encode() if isinstance(body, dict) else body
    data = data.encode() if isinstance(data, str) else data
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", content_type.encode()), (b"content-length", str(len(data)).encode()),
                            *headers]})
    await send({"type": "http.response.body", "body": data})


def login_page(has_token: bool, message: str = "") -> str:
    note = f'<p role="alert">{html.escape(message)}</p>' if message else ""
    if not has_token:
        return "<!doctype html><title>imgsearch</title><p>This server has no token: <a href='/'>open the app</a>.</p>"
    return ("<!doctype html><meta charset=utf-8><title>imgsearch: log in</title>"
            "<h1>imgsearch</h1><p>This server asks for its token (the one it was started with).</p>" + note +
            "<form method=post action=/login><input type=password name=token id=token autofocus "
            "autocomplete=current-password aria-label=token> <button type=submit>Log in</button></form>")
