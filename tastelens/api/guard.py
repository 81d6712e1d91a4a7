"""What every request passes before a route runs: the body-size limit.

- :class:`BodyLimitMiddleware` (pure ASGI) answers 413 when ``Content-Length`` says the body
  is too large, without reading it, and also counts the bytes actually received, so a
  chunked upload without a length (or with a false one) is cut off at the limit too. The
  bounded body is then replayed to the app.

Where a request may come from is :mod:`tastelens.api.sameorigin`; who may call what is
:mod:`tastelens.api.access`.
"""

from __future__ import annotations

import json
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send


def error_body(kind: str, message: str) -> dict[str, Any]:
    """The JSON body of every error response."""
    return {"error": {"type": kind, "message": message}}


async def send_json_error(send: Send, status: int, kind: str, message: str) -> None:
    body = json.dumps(error_body(kind, message)).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", str(len(body)).encode()),
                            (b"connection", b"close")]})
    await send({"type": "http.response.body", "body": body})


class BodyLimitMiddleware:
    """413 for request bodies over ``max_bytes`` (declared or actually streamed)."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        too_large = (f"request body larger than {self.max_bytes} bytes "
                     "(settings api.max_body_bytes)")
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None:
            try:
                length = int(declared)
            except ValueError:
                await send_json_error(send, 400, "bad_request", "invalid Content-Length header")
                return
            if length > self.max_bytes:
                await send_json_error(send, 413, "payload_too_large", too_large)
                return
        chunks: list[bytes] = []
        total = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return  # the client went away; nothing to answer
            chunk = message.get("body", b"")
            total += len(chunk)
            if total > self.max_bytes:
                await send_json_error(send, 413, "payload_too_large", too_large)
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()  # after the body: wait for the disconnect, as ASGI does

        await self.app(scope, replay, send)
