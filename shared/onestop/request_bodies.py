"""The bodies dongbo sends: checked before anything goes on the wire, so a mistake fails loudly and early."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import date

from shared.onestop.models import format_vn_date


def sync_payload(madonvi: str, tungay: date | None, denngay: date | None) -> dict[str, str]:
    """The sync call's body. Without dates the one-stop system returns every unsynced dossier with a result;
    with dates, every dossier received in the range (dd/mm/yyyy, both ends included; one date alone leaves
    the other side open, docs/onestop-api.md). A date not given is left out, not sent empty."""
    if not isinstance(madonvi, str) or not madonvi.strip():
        raise ValueError("madonvi must be a unit code")
    if tungay is not None and denngay is not None and tungay > denngay:
        raise ValueError(f"tungay {tungay} is after denngay {denngay}")
    payload = {"madonvi": madonvi}
    if tungay is not None:
        payload["tungay"] = format_vn_date(tungay)
    if denngay is not None:
        payload["denngay"] = format_vn_date(denngay)
    return payload


def mark_payloads(madonvi: str, mahosos: Sequence[str], batch_size: int) -> Iterator[dict]:
    """The mark-synced bodies, `batch_size` dossiers each; a code given twice is sent once."""
    if batch_size < 1:
        raise ValueError("batch_size must be at least 1")
    codes = unique_codes(mahosos, "mahoso")
    for start in range(0, len(codes), batch_size):
        yield {"madonvi": madonvi, "dataHoso": [{"mahoso": code} for code in codes[start : start + batch_size]]}


def unique_codes(values: Sequence[str], name: str) -> list[str]:
    if isinstance(values, str):
        raise TypeError(f"give a sequence of {name} codes, not one string")
    codes = []
    for value in values:
        if not isinstance(value, str) or not value.strip():
            raise ValueError(f"every {name} must be a non-empty code, got {value!r}")
        codes.append(value)
    return list(dict.fromkeys(codes))
