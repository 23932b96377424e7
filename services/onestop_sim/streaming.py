"""A streamed response body that can be paced (`--file-bandwidth`), cut short (`--truncate-rate`) or dripped
(one byte every `drip` seconds, the `drip` poison: only a total deadline on the client stops it).

Starlette's StreamingResponse can do neither, so this is a small ASGI response of its own. Cutting
short means: the headers promise the full Content-Length, part of the body goes out, and the app returns
without finishing; uvicorn then closes the connection, which is what a dropped provincial link looks
like to the client. (uvicorn logs that as an error; `cli.py` filters that one line out.)
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Iterable, Iterator

import anyio
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

INCOMPLETE_MESSAGE = "ASGI callable returned without completing response."


class StreamBody(Response):
    def __init__(self, chunks: Iterable[bytes], *, media_type: str, headers: dict[str, str] | None = None,
                 content_length: int | None = None, truncate_at: int | None = None, bandwidth: float = 0,
                 head: bool = False, blocking: bool = False, on_close: Callable[[], None] | None = None,
                 status_code: int = 200, drip: float = 0, raw_headers: list[tuple[bytes, bytes]] | None = None):
        self.status_code = status_code
        self.drip = drip
        self.media_type = media_type
        self.background = None
        self.body = b""
        self.chunks = iter(chunks)
        self.truncate_at, self.bandwidth, self.head = truncate_at, bandwidth, head
        self.blocking, self.on_close = blocking, on_close
        fields = dict(headers or {}, **{"content-type": media_type})
        if content_length is not None:
            fields["content-length"] = str(content_length)
        self.raw_headers = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in fields.items()]
        self.raw_headers += raw_headers or []  # bytes as they are: a header that is not text on purpose

    async def _iterate(self) -> AsyncIterator[bytes]:
        iterator: Iterator[bytes] = self.chunks
        while True:
            # A generator over SQLite does blocking reads: those run on a worker thread.
            chunk = await anyio.to_thread.run_sync(next, iterator, None) if self.blocking else next(iterator, None)
            if chunk is None:
                return
            yield chunk

    def _pieces(self, chunk: bytes) -> Iterator[bytes]:
        """Paced bodies go out in pieces of about a tenth of a second each, so the rate is smooth."""
        if self.drip:
            yield from (chunk[i:i + 1] for i in range(len(chunk)))
            return
        if not self.bandwidth:
            yield chunk
            return
        step = max(1024, int(self.bandwidth / 10))
        for start in range(0, len(chunk), step):
            yield chunk[start:start + step]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await send({"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers})
            if self.head:
                await send({"type": "http.response.body", "body": b"", "more_body": False})
                return
            if await self._send_body(receive, send):
                await send({"type": "http.response.body", "body": b"", "more_body": False})
        finally:
            await self._close()

    async def _send_body(self, receive: Receive, send: Send) -> bool:
        """Sends the body; False when it stopped early (cut short, or the client went away)."""
        gone = asyncio.Event()

        async def watch() -> None:
            while (await receive())["type"] != "http.disconnect":
                pass
            gone.set()

        watcher = asyncio.ensure_future(watch())
        loop = asyncio.get_running_loop()
        started, sent = loop.time(), 0
        try:
            async for chunk in self._iterate():
                for piece in self._pieces(chunk):
                    if self.truncate_at is not None and sent + len(piece) >= self.truncate_at:
                        piece = piece[:self.truncate_at - sent]
                        await send({"type": "http.response.body", "body": piece, "more_body": True})
                        return False
                    if self.drip:
                        # Wakes as soon as the client goes: a held drip would otherwise outlive its client.
                        with contextlib.suppress(asyncio.TimeoutError):
                            await asyncio.wait_for(gone.wait(), self.drip)
                    elif self.bandwidth:
                        await asyncio.sleep(max(0.0, started + (sent + len(piece)) / self.bandwidth - loop.time()))
                    if gone.is_set():
                        return False
                    await send({"type": "http.response.body", "body": piece, "more_body": True})
                    sent += len(piece)
            return True
        finally:
            watcher.cancel()

    async def _close(self) -> None:
        close = getattr(self.chunks, "close", None)
        if close is not None:  # a generator over SQLite closes its connection in its `finally`
            if self.blocking:
                await anyio.to_thread.run_sync(close)
            else:
                close()
        if self.on_close is not None:
            await anyio.to_thread.run_sync(self.on_close)
