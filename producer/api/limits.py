"""Every request body is bounded in time, and every small one in size, before any route reads it.

An ASGI middleware, because FastAPI reads a JSON body before a route's code
runs: a body that stalls for ``api_upload_idle_timeout_s`` or takes longer
than ``api_upload_timeout_s`` ends in a 408, and a body over ``SMALL_BODY``
bytes (anything but a book upload, which has its own per-token limit) in a
413, without the whole of it ever being held.
"""

from __future__ import annotations

import asyncio
import json
import time

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

SMALL_BODY = 256 * 1024
UPLOAD_ROUTES = frozenset({("POST", "/v1/jobs"), ("POST", "/v1/books/contents")})


class BodyTooLarge(HTTPException):
    def __init__(self, limit: int) -> None:
        super().__init__(413, f"the request body is over {limit} bytes")


class BodyTimeout(HTTPException):
    """An HTTPException, so that FastAPI's body parsing passes it on instead of calling it a bad body."""

    def __init__(self) -> None:
        super().__init__(408, "the request body stalled or took too long; send it again")


async def _reply(send: Send, status: int, message: str) -> None:
    body = json.dumps({"error": {"type": "request", "message": message}}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})


class BodyLimits:
    def __init__(self, app: ASGIApp, *, idle_timeout_s: float, total_timeout_s: float) -> None:
        self.app = app
        self.idle_timeout_s = idle_timeout_s
        self.total_timeout_s = total_timeout_s

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = None if (scope["method"], scope["path"].rstrip("/")) in UPLOAD_ROUTES else SMALL_BODY
        headers = dict(scope.get("headers") or [])
        declared = headers.get(b"content-length", b"")
        if limit is not None and declared.isdigit() and int(declared) > limit:
            await _reply(send, 413, f"the request body is over {limit} bytes")
            return
        deadline = time.monotonic() + self.total_timeout_s
        state = {"received": 0, "done": False, "started": False}

        async def guarded_receive() -> Message:
            if state["done"]:
                return await receive()
            wait = min(self.idle_timeout_s, deadline - time.monotonic())
            try:
                message = await asyncio.wait_for(receive(), timeout=max(wait, 0.001))
            except TimeoutError:
                raise BodyTimeout() from None
            if message["type"] == "http.request":
                state["received"] = int(state["received"]) + len(message.get("body", b""))
                if limit is not None and int(state["received"]) > limit:
                    raise BodyTooLarge(limit)
                state["done"] = not message.get("more_body", False)
            return message

        async def tracking_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                state["started"] = True
            await send(message)

        try:
            await self.app(scope, guarded_receive, tracking_send)
        except (BodyTimeout, BodyTooLarge) as exc:
            if state["started"]:
                raise
            await _reply(send, exc.status_code, exc.detail)
