"""A dossier and its attachments as the one-stop system describes them, validated and normalized.

Field names stay the one-stop API's own (Vietnamese). Text is normalized to NFC so that the same name
typed on two keyboards (NFC or NFD) compares equal; dates arrive as dd/mm/yyyy.

What the archive can never store is refused here, at the edge: a code (`mahoso`, `madonvi`, `matailieu`,
`mathutuc`) is printable and at most CODE_CHARS long (the width of its column); text carries no NUL and no
lone surrogate (PostgreSQL and UTF-8 refuse both). How long a text field may be is a setting
(DONGBO_MAX_FIELD_CHARS), checked by `dossier_items.check_limits`, so that raising it needs no new code.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, field_validator


def _nfc(value: str) -> str:
    return unicodedata.normalize("NFC", value).strip()


def _text(value: Any) -> Any:
    """Numbers become text (a code sent as 123 is still a code; ijson reads 1.10 as Decimal); None stays None."""
    if isinstance(value, (int, float, Decimal)) and not isinstance(value, bool):
        return str(value)
    return value


def _not_blank(value: str) -> str:
    # Field(min_length=1) is checked before stripping, so "  " would pass as an empty code.
    if not value:
        raise ValueError("must not be blank")
    return value


CODE_CHARS = 200  # the width of every code column (ho_so.mahoso, tai_lieu.matailieu, ...)


def _printable(value: str) -> str:
    # A code names a row, an object key and a log line: a control character (NUL above all) breaks each.
    if not value.isprintable():
        raise ValueError("must be printable text (it holds a control character)")
    return value


def _storable(value: str) -> str:
    """Text PostgreSQL can store: no NUL, and valid Unicode (JSON may carry a lone surrogate, UTF-8 cannot)."""
    if "\x00" in value:
        raise ValueError("must not contain a NUL character")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("is not valid Unicode (a lone surrogate)") from None
    return value


Text = Annotated[str, BeforeValidator(_text), AfterValidator(_nfc), AfterValidator(_storable)]
Code = Annotated[
    str,
    BeforeValidator(_text),
    AfterValidator(_nfc),
    AfterValidator(_not_blank),
    AfterValidator(_printable),
    Field(min_length=1, max_length=CODE_CHARS),
]
# A code that may be absent (`mathutuc`): empty, or a code.
OptionalCode = Annotated[
    str, BeforeValidator(_text), AfterValidator(_nfc), AfterValidator(_printable), Field(max_length=CODE_CHARS)
]


_DMY = re.compile(r"([0-9]{1,2})/([0-9]{1,2})/([0-9]{4})")


def parse_vn_date(value: Any) -> Any:
    """Accepts dd/mm/yyyy (the document's format), also with a time after it, or ISO yyyy-mm-dd."""
    if isinstance(value, (date, datetime)) or value is None:
        return value.date() if isinstance(value, datetime) else value
    if not isinstance(value, str):
        raise ValueError("date must be text dd/mm/yyyy")
    text = value.strip().split(" ")[0].split("T")[0]
    match = _DMY.fullmatch(text)
    if match:  # the usual case, without strptime's cost (a sync response holds hundreds of thousands)
        day, month, year = (int(part) for part in match.groups())
        try:
            return date(year, month, day)
        except ValueError:
            raise ValueError(f"date {value!r} is not a real day") from None
    for fmt in ("%Y-%m-%d", "%d-%m-%Y"):
        try:
            return datetime.strptime(text, fmt).date()
        except ValueError:
            continue
    raise ValueError(f"date {value!r} is not dd/mm/yyyy")


def format_vn_date(value: date) -> str:
    return value.strftime("%d/%m/%Y")


VnDate = Annotated[date, BeforeValidator(parse_vn_date)]


class Attachment(BaseModel):
    """One entry of `file_dinh_kem`."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    matailieu: Code
    tentailieu: Text = ""
    url_file: Annotated[str, AfterValidator(_storable), Field(min_length=1, max_length=4000)]
    ten_file: Text = ""

    @field_validator("url_file")
    @classmethod
    def url_is_text(cls, value: str) -> str:
        value = value.strip()
        if not value:
            raise ValueError("must not be blank")
        return value

    @field_validator("tentailieu", "ten_file", mode="before")
    @classmethod
    def none_is_empty(cls, value: Any) -> Any:
        return "" if value is None else value


class Dossier(BaseModel):
    """One dossier of the sync API, with its attachments."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    mahoso: Code
    madonvi: Code
    tentochuccanhan: Text = ""
    ngaynhan: VnDate | None = None
    mathutuc: OptionalCode = ""
    tenthutuc: Text = ""
    file_dinh_kem: list[Attachment] = Field(default_factory=list)

    @field_validator("tentochuccanhan", "mathutuc", "tenthutuc", mode="before")
    @classmethod
    def none_is_empty(cls, value: Any) -> Any:
        return "" if value is None else value

    @field_validator("ngaynhan", mode="before")
    @classmethod
    def blank_date_is_none(cls, value: Any) -> Any:
        # An empty date means "not given", like null.
        return None if isinstance(value, str) and not value.strip() else value


@dataclass(frozen=True)
class InvalidDossier:
    """A dossier of a sync response that failed validation. Its neighbours in the response are still good.

    `raw` is the item as the one-stop system sent it (numbers as int or text), so that it can be dead-lettered
    and looked at, or a bounded summary of it when it is too large or too deeply nested to copy safely;
    `reason` is the dead-letter reason code (`malformed-dossier`, `too-many-files`, `field-too-long`,
    `dossier-too-large`). `mahoso` and `madonvi` are as sent and may hold anything: use `dossier_items.safe_key`
    before they reach a database or a header.
    """

    mahoso: str | None
    madonvi: str
    raw: Any
    error: str
    reason: str = "malformed-dossier"


class DocumentType(BaseModel):
    """One entry of the document-type catalog (`danhmucloaitailieu`)."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    maloaitailieu: Code
    tenloaitailieu: Text = ""

    @field_validator("tenloaitailieu", mode="before")
    @classmethod
    def none_is_empty(cls, value: Any) -> Any:
        return "" if value is None else value
