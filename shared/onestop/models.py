"""A dossier and its attachments as the one-stop system describes them, validated and normalized.

Field names stay the one-stop API's own (Vietnamese). Text is normalized to NFC so that the same name
typed on two keyboards (NFC or NFD) compares equal; dates arrive as dd/mm/yyyy.
"""

from __future__ import annotations

import unicodedata
from datetime import date, datetime
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, field_validator


def _nfc(value: str) -> str:
    return unicodedata.normalize("NFC", value).strip()


def _text(value: Any) -> Any:
    """Numbers become text (a code sent as 123 is still a code); None stays None."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)
    return value


Text = Annotated[str, BeforeValidator(_text), AfterValidator(_nfc)]
Code = Annotated[str, BeforeValidator(_text), AfterValidator(_nfc), Field(min_length=1, max_length=200)]


def parse_vn_date(value: Any) -> Any:
    """Accepts dd/mm/yyyy (the document's format), also with a time after it, or ISO yyyy-mm-dd."""
    if isinstance(value, (date, datetime)) or value is None:
        return value.date() if isinstance(value, datetime) else value
    if not isinstance(value, str):
        raise ValueError("date must be text dd/mm/yyyy")
    text = value.strip().split(" ")[0].split("T")[0]
    for fmt in ("%d/%m/%Y", "%Y-%m-%d", "%d-%m-%Y"):
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
    url_file: Annotated[str, Field(min_length=1, max_length=4000)]
    ten_file: Text = ""

    @field_validator("url_file")
    @classmethod
    def url_is_text(cls, value: str) -> str:
        return value.strip()


class Dossier(BaseModel):
    """One dossier of the sync API, with its attachments."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    mahoso: Code
    madonvi: Code
    tentochuccanhan: Text = ""
    ngaynhan: VnDate | None = None
    mathutuc: Text = ""
    tenthutuc: Text = ""
    file_dinh_kem: list[Attachment] = Field(default_factory=list)

    @field_validator("tentochuccanhan", "mathutuc", "tenthutuc", mode="before")
    @classmethod
    def none_is_empty(cls, value: Any) -> Any:
        return "" if value is None else value
