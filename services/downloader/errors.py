"""The downloader's errors, which now live with the others in `shared.errors`; kept so that old imports work."""

from __future__ import annotations

from shared.errors import FileTooSlow

__all__ = ["FileTooSlow"]
