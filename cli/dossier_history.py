"""What `dongbo file history MAHOSO` shows: a dossier's versions, every file it ever had, its corrections.

The current view of a dossier is `ho_so` and its `tai_lieu` rows without `superseded_at`; the history is
`ho_so_version` (one row per version, with the object keys it listed), the superseded `tai_lieu` rows
(their objects stay readable under their own keys) and `hieu_chinh`. The query is
shared/archive/versions.py's, the one `dongbo trace` and the web dossier page use; this module only prints.
"""

from __future__ import annotations

from typing import Any

from cli.common import table
from shared.archive.versions import history

__all__ = ["history", "render"]


def _when(value) -> str:
    return value.isoformat(timespec="seconds") if value is not None else "-"


def render(found: dict[str, Any]) -> str:
    lines = [f"dossier {found['mahoso']} ({found['madonvi']}), {found['state']}", "", "versions:"]
    lines.append(table(["#", "version", "seen at", "recorded at", "files", "current", "after corrections"],
                       [[v["number"], v["version_hash"][:12], _when(v["fetched_at"]), _when(v["recorded_at"]),
                         len(v["object_keys"]), "yes" if v["current"] else "",
                         ", ".join(c["correction_id"][:12] for c in v["corrections"])] for v in found["versions"]],
                       right={0, 4}))
    lines += ["", "files:"]
    lines.append(table(["matailieu", "ten_file", "bytes", "stored", "reported", "superseded", "object key", "why"],
                       [[f["matailieu"], f["ten_file"], f["size"], _when(f["stored_at"]), _when(f["reported_at"]),
                         _when(f["superseded_at"]), f["object_key"], f["superseded_reason"] or ""]
                        for f in found["files"]], right={2}))
    lines += ["", "corrections:"]
    if found["corrections"]:
        # The outcome last and whole: a refusal's message from the one-stop system is the point of the row.
        lines.append(table(["id", "action", "matailieu", "by", "asked", "status", "tries", "finished", "outcome"],
                           [[c["correction_id"][:12], c["action"], c["matailieu"], c["requested_by"],
                             _when(c["requested_at"]), c["status"], c["attempts"], _when(c["finished_at"]),
                             c["outcome"] or ""] for c in found["corrections"]], right={6}))
    else:
        lines.append("(none)")
    return "\n".join(lines)
