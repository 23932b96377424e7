"""The attachments at their `url_file`: GET and HEAD, with Content-Length, Content-Type and an ETag.

The Content-Type comes from the file name, whatever the bytes are: a `.docx` that is really a PDF is
served as a `.docx`, on purpose, so the pipeline's own content check has something to find.

A file of a file-host poison kind (`poison.FILE_KINDS`) misbehaves as a careless or hostile file host would:
`redirect-bomb` answers 302 back to itself with a gzip bomb as the body; `gzip-bomb` answers 200 with a
gzip body that decodes to `--poison-bomb-bytes`; `drip` sends its bytes one every `--poison-drip-seconds`;
`bad-location` answers 302 with a Location that is not UTF-8; `redirect-forbidden` redirects to the cloud
metadata address. Each is decompressed, if at all, only by the client.
"""

from __future__ import annotations

import mimetypes
import random
import time
from collections.abc import Iterator
from urllib.parse import quote

from fastapi import APIRouter, Request

from services.onestop_sim import attachments, content, poison
from services.onestop_sim.context import Sim, sim_of
from services.onestop_sim.errors import VendorError
from services.onestop_sim.faults import roll
from services.onestop_sim.models import ErrorBody
from services.onestop_sim.streaming import StreamBody

router = APIRouter(tags=["attachments"])
FILE_NOT_FOUND = "Không tìm thấy file"


@router.api_route(
    attachments.FILES_PREFIX + "{madonvi}/{yyyy}/{mm}/{dd}/{tail:path}",
    methods=["GET", "HEAD"],
    responses={200: {"content": {"application/octet-stream": {}}, "description": "The file's bytes."},
               404: {"model": ErrorBody}},
    summary="An attached file (url_file)",
)
async def download(request: Request, madonvi: str, yyyy: str, mm: str, dd: str, tail: str):
    sim = sim_of(request)
    # A single indexed lookup; cheap enough to run on the event loop, which saves a thread hop per file.
    row = attachments.find(sim.store.conn, madonvi, yyyy, mm, dd, tail)
    if row is None:
        raise VendorError(404, FILE_NOT_FOUND, shape="error")
    if row["kind"] == "uploaded":
        data = attachments.uploaded_bytes(sim.store.conn, row["id"])
        chunks: Iterator[bytes] = (data[i:i + content.CHUNK] for i in range(0, len(data), content.CHUNK))
        size, etag = len(data), content.file_etag(sim.config.seed, row["id"], len(data), row["sha256"])
    else:
        layout = content.layout(sim.config.seed, row["id"], row["size"],
                                content.page_text(row["mahoso"], row["matailieu"], row["ten_file"]))
        chunks, size = layout.chunks(), layout.size
        etag = content.file_etag(sim.config.seed, row["id"], size)
    head = request.method == "HEAD"
    if row["kind"] in poison.FILE_KINDS:
        if not head:
            sim.counters.file_fetched(row["id"])
        # The path as sent (still percent-encoded), so the redirect names exactly the URL that was asked for.
        raw_path = request.scope.get("raw_path") or quote(request.url.path).encode()
        return _misbehave(sim, row, raw_path.decode("latin-1"), chunks, size, head)
    faults = sim.faults.current
    cut = None
    if not head:
        sim.counters.file_fetched(row["id"])
        if roll(faults.truncate_rate):
            cut = max(1, int(size * random.uniform(0.05, 0.95)))
    headers = {
        "etag": etag,
        "content-disposition": f"attachment; filename*=UTF-8''{quote(row['ten_file'], safe='')}",
        "cache-control": "no-cache",
    }
    media_type = mimetypes.guess_type(row["ten_file"])[0] or "application/octet-stream"
    return StreamBody(chunks, media_type=media_type, headers=headers, content_length=size, truncate_at=cut,
                      bandwidth=faults.file_bandwidth, head=head)


def _misbehave(sim: Sim, row, path: str, chunks: Iterator[bytes], size: int, head: bool) -> StreamBody:
    sizes, kind = sim.config.poison, row["kind"]
    if kind in ("redirect-bomb", "gzip-bomb"):
        bomb = poison.gzip_bomb(sizes.redirect_bomb_bytes if kind == "redirect-bomb" else sizes.bomb_bytes)
        headers = {"content-encoding": "gzip"}
        if kind == "redirect-bomb":
            headers["location"] = path  # back to itself: a circle of bombs
        return StreamBody([bomb], media_type="application/pdf", headers=headers, content_length=len(bomb),
                          head=head, status_code=302 if kind == "redirect-bomb" else 200)
    if kind == "bad-location":
        return StreamBody([], media_type="text/html", content_length=0, head=head, status_code=302,
                          raw_headers=[(b"location", poison.BAD_LOCATION)])
    if kind == "redirect-forbidden":
        location = f"{poison.FORBIDDEN_URL}{row['stamp']}{attachments.SEPARATOR}{quote(row['ten_file'], safe='')}"
        return StreamBody([], media_type="text/html", headers={"location": location}, content_length=0, head=head,
                          status_code=302)
    # drip: the whole file promised, one byte at a time; how long each client held on is kept for /_sim/stats.
    started = time.monotonic()
    return StreamBody(chunks, media_type="application/pdf", content_length=size, head=head, drip=sizes.drip_seconds,
                      on_close=lambda: sim.drips.append(round(time.monotonic() - started, 3)))
