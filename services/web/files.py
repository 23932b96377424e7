"""Serving a stored file: streamed from S3 in bounded memory, with a safe content type and its
Vietnamese name in Content-Disposition (RFC 6266 / RFC 5987).

A file is shown inline only when the browser's own viewer handles it harmlessly (PDF and raster images);
anything else — above all HTML, SVG, XML or script, which would run with this site's rights — is sent as
an attachment, and a type a browser might execute is replaced by application/octet-stream.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from urllib.parse import quote

from starlette.responses import StreamingResponse

from shared.storage.objects import ObjectStore

CHUNK = 256 * 1024  # what one read from S3 holds in memory; a 1 GB file passes through in such pieces
INLINE_TYPES = frozenset({"application/pdf", "image/png", "image/jpeg", "image/gif", "image/webp", "image/bmp"})
ACTIVE = re.compile(r"html|xml|svg|javascript|ecmascript|x-sh|wasm|text/", re.IGNORECASE)


def served_type(content_type: str) -> str:
    base = (content_type or "").split(";")[0].strip().lower()
    if not base or "/" not in base or ACTIVE.search(base):
        return "application/octet-stream"
    return base


def content_disposition(kind: str, name: str) -> str:
    """`attachment; filename="ascii"; filename*=UTF-8''percent-encoded` — old clients read the first."""
    name = name.replace("\r", " ").replace("\n", " ").strip() or "tep"
    ascii_name = re.sub(r'[^A-Za-z0-9._ -]', "_", name.encode("ascii", "replace").decode())
    return f"{kind}; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(name, safe='')}"


def _chunks(response) -> Iterator[bytes]:
    try:
        yield from response.stream(CHUNK)
    finally:
        response.close()
        response.release_conn()


def stream_file(store: ObjectStore, row: dict, inline: bool) -> StreamingResponse:
    kind = served_type(row["content_type"])
    show_inline = inline and kind in INLINE_TYPES
    response = store.client.get_object(store.bucket, row["object_key"])
    headers = {
        "Content-Disposition": content_disposition("inline" if show_inline else "attachment",
                                                   row["ten_file"] or row["tentailieu"] or row["matailieu"]),
        "Content-Length": str(row["size"]),
        "X-Content-Type-Options": "nosniff",
        "Cache-Control": "private, no-store",
        # Framed only by this site's own dossier page, and never allowed to run anything of its own.
        "Content-Security-Policy": "default-src 'none'; object-src 'self'; frame-ancestors 'self'"
        if show_inline else "default-src 'none'; sandbox; frame-ancestors 'none'",
        "X-Frame-Options": "SAMEORIGIN" if show_inline else "DENY",
    }
    return StreamingResponse(_chunks(response), media_type=kind, headers=headers)
