"""Where a changed file goes when its key already holds other, complete bytes: never over them.

An attachment's key is a function of its entry (unit, dossier, type, `url_file`, name). The one-stop
system may still serve different bytes under the same entry (a vendor-side edit of a file). The object
already archived under that key belongs to an earlier version of the dossier and must stay readable
(DESIGN, delivery rule 8), so the new bytes go under a key of their own: the same key with a
discriminator taken from what the source says about these bytes (its ETag and length). The same changed
file seen again gets the same discriminator, so a retry finds it instead of storing a second copy.
"""

from __future__ import annotations

import hashlib

DISCRIMINATOR_HEX = 12


def changed_key(key: str, etag: str | None, length: int | None) -> str:
    """`a/b/c/{digest}-{name}` → `a/b/c/v{discriminator}-{digest}-{name}`, stable for the same source."""
    sha = hashlib.sha256()
    sha.update((etag or "").encode("utf-8", "surrogatepass"))
    sha.update(b"\x00")
    sha.update(str(length if length is not None else "").encode("ascii"))
    folder, _, name = key.rpartition("/")
    versioned = f"v{sha.hexdigest()[:DISCRIMINATOR_HEX]}-{name}"
    return f"{folder}/{versioned}" if folder else versioned
