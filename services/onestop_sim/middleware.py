"""Applies the request-level faults (latency, hangs, injected errors) before a request reaches a route.

A plain ASGI middleware rather than Starlette's BaseHTTPMiddleware, which would buffer or re-wrap the
streamed bodies. Only the vendor API and the attachment URLs are affected: `/_sim/*` and the OpenAPI
pages stay reliable so tests can always look and steer.
"""

from __future__ import annotations

import asyncio
import json

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from services.onestop_sim.attachments import FILES_PREFIX
from services.onestop_sim.errors import API_PREFIX, SERVER_ERROR, STATUS_SHAPED, endpoint_of, error_body
from services.onestop_sim.faults import FaultState, roll


def target_of(path: str) -> str | None:
    """The `--error-rate` name a path answers to: an API name, "files", "" (other API paths) or None."""
    if path.startswith(FILES_PREFIX):
        return "files"
    if path.startswith(API_PREFIX):
        return endpoint_of(path) or ""
    return None


async def _stall(seconds: float, receive: Receive) -> tuple[Receive, bool]:
    """Waits `seconds`, or less if the client gives up first (a stalled request then ends with its client
    rather than holding up shutdown). Returns a `receive` that replays what was read while waiting, and
    whether the client is gone."""
    seen: list[Message] = []

    async def watch() -> None:
        while not seen or seen[-1]["type"] != "http.disconnect":
            seen.append(await receive())

    watcher = asyncio.ensure_future(watch())
    await asyncio.wait({watcher}, timeout=seconds)
    watcher.cancel()
    gone = bool(seen) and seen[-1]["type"] == "http.disconnect"

    async def replay() -> Message:
        return seen.pop(0) if seen else await receive()

    return replay, gone


class FaultMiddleware:
    def __init__(self, app: ASGIApp, faults: FaultState):
        self.app = app
        self.faults = faults

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        target = target_of(scope["path"]) if scope["type"] == "http" else None
        if target is None:
            await self.app(scope, receive, send)
            return
        faults = self.faults.current
        if faults.latency_ms:
            await asyncio.sleep(faults.latency_ms / 1000)
        if roll(faults.hang_rate):
            receive, gone = await _stall(faults.hang_seconds, receive)
            if gone:
                return
        if roll(faults.error_rate_for(target)):
            await self._fail(faults.error_status, target, send)
            return
        await self.app(scope, receive, send)

    @staticmethod
    async def _fail(status: int, target: str, send: Send) -> None:
        """An injected error: answered before the route runs, so it has no effect on the state."""
        shape = "status" if target in STATUS_SHAPED else "error"
        body = json.dumps(error_body(status, SERVER_ERROR, shape), ensure_ascii=False).encode("utf-8")
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})
