"""Requests a web page elsewhere could make a browser send are refused before any route runs.

:class:`SameOriginMiddleware` (pure ASGI) checks three things:

- **Host.** A page on ``attacker.example`` can make its own name resolve to 127.0.0.1 (DNS
  rebinding) and then talk to a local server as if it were same-origin, reading what it
  answers. The browser still sends ``Host: attacker.example:8080``, so the server answers only
  to the loopback names (``localhost``, 127.0.0.0/8, ``::1``; any port, so an SSH tunnel on
  another port works) and to ``api.allowed_hosts``; any other name gets 400. With an API key
  and no ``allowed_hosts`` every name is accepted (a rebinding page has no key). ``/health``
  is not checked: it holds no data, and load balancers probe it by address.
- **Origin** of a write (``POST``/``PUT``/``PATCH``/``DELETE`` under ``/v1/``): a browser
  names the page that sent it, and a page of another origin gets 403 — same host name and
  port as the ``Host`` header, or a name listed in ``api.allowed_hosts``, are accepted;
  ``Origin: null`` (a sandboxed or file page) is not. Requests without an ``Origin`` (curl,
  scripts, back ends) are not browsers' cross-site requests and pass.
- **Content-Type** of a write: ``application/json`` (or ``…+json``), else 415. A cross-site
  ``fetch(…, {mode: "no-cors"})`` can only send ``text/plain``, a form or multipart, never
  JSON, so a JSON body cannot be planted from another site whatever the framework's version.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from urllib.parse import urlsplit

from starlette.types import ASGIApp, Receive, Scope, Send

from tastelens.api.guard import send_json_error

_WRITES = frozenset({"POST", "PUT", "PATCH", "DELETE"})
_DEFAULT_PORTS = {"http": 80, "https": 443}


def is_loopback(host: str) -> bool:
    """True for 'localhost' and loopback addresses (127.0.0.0/8, ::1)."""
    if host.strip().casefold() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip().strip("[]")).is_loopback
    except ValueError:
        return False  # another host name: it may resolve to anything


def split_host(value: str) -> tuple[str, int | None]:
    """(name, port or None) of a Host header value; IPv6 names keep their brackets."""
    value = value.strip().casefold()
    if value.startswith("["):
        end = value.find("]")
        if end == -1:
            return value, None
        name, rest = value[:end + 1], value[end + 1:]
    elif value.count(":") == 1:
        name, rest = value.split(":", 1)
        rest = ":" + rest
    else:
        name, rest = value, ""
    port = int(rest[1:]) if rest.startswith(":") and rest[1:].isdigit() else None
    return name, port


def name_matches(name: str, patterns: Iterable[str]) -> bool:
    """``name`` is one of ``patterns`` ('*' any, '*.example.com' its sub-domains)."""
    for pattern in patterns:
        if pattern == "*" or pattern == name or (
                pattern.startswith("*.") and name.endswith(pattern[1:])):
            return True
    return False


class SameOriginMiddleware:
    """400 for a Host this server does not answer to; 403 for a cross-origin write; 415 for
    a write whose body is not JSON (see the module docstring)."""

    def __init__(self, app: ASGIApp, *, allowed_hosts: Iterable[str], any_host: bool) -> None:
        self.app = app
        self.allowed = tuple(allowed_hosts)
        self.any_host = any_host and not self.allowed

    def host_allowed(self, name: str) -> bool:
        return self.any_host or is_loopback(name) or name_matches(name, self.allowed)

    def origin_allowed(self, origin: str, host: str) -> bool:
        parts = urlsplit(origin.strip().casefold())
        if parts.scheme not in _DEFAULT_PORTS or not parts.hostname:
            return False  # 'null', or not a web origin
        name = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
        try:
            port = parts.port or _DEFAULT_PORTS[parts.scheme]
        except ValueError:
            return False
        if self.allowed and name_matches(name, [p for p in self.allowed if p != "*"]):
            return True
        host_name, host_port = split_host(host)
        # The Host header's port defaults to the origin's scheme: behind a TLS proxy the
        # server's own scheme (http) says nothing about the port the browser used.
        return name == host_name and port == (host_port or _DEFAULT_PORTS[parts.scheme])

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").casefold(): v.decode("latin-1")
                   for k, v in scope.get("headers") or []}
        host = headers.get("host", "")
        path = scope.get("path", "")
        if path != "/health" and not self.host_allowed(split_host(host)[0]):
            await send_json_error(
                send, 400, "invalid_host",
                f"this server does not answer to the host name in Host: {host[:100]!r}; "
                "loopback names always work, others must be listed in settings "
                "api.allowed_hosts")
            return
        if scope.get("method") in _WRITES and path.startswith("/v1/"):
            origin = headers.get("origin")
            if origin is not None and not self.origin_allowed(origin, host):
                await send_json_error(
                    send, 403, "forbidden_origin",
                    f"a web page at {origin[:100]!r} may not send requests to this server "
                    "(only its own pages, or the names in settings api.allowed_hosts)")
                return
            kind = headers.get("content-type", "").split(";", 1)[0].strip().casefold()
            if not (kind == "application/json" or (kind.startswith("application/")
                                                   and kind.endswith("+json"))):
                await send_json_error(
                    send, 415, "unsupported_media_type",
                    "the request body must be JSON, sent with `Content-Type: "
                    f"application/json` (got {kind[:60] or 'no Content-Type'})")
                return
        await self.app(scope, receive, send)
