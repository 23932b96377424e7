"""Request and response bodies of the seven endpoints, for validation and for the OpenAPI page.

Unknown fields in a request are ignored, as a lenient vendor server would. Text limits keep a fuzzer's
megabyte strings out of SQLite; `noidung_base64` allows a 20 MiB file.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field


def _encodable(value: str) -> str:
    """JSON may carry lone surrogates (\\ud800) that no UTF-8 text can hold: refuse them here, as a 400,
    rather than fail later in SQLite or half-way through a streamed answer."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("text is not valid Unicode") from None
    return value


Text = Annotated[str, AfterValidator(_encodable)]
Unit = Annotated[Text, Field(min_length=1, max_length=100, examples=["000.00.17.H55"])]
Code = Annotated[Text, Field(min_length=1, max_length=200)]
Day = Annotated[Text | None, Field(default=None, max_length=40, examples=["01/01/2020"])]
MAX_UPLOAD = 20 * 1024 * 1024
MAX_MARKS = 10_000  # dossiers in one mark-synced call


class Request(BaseModel):
    model_config = ConfigDict(extra="ignore")


class LoginRequest(Request):
    username: Annotated[Text, Field(max_length=200, examples=["admin_sotaichinh"])]
    password: Annotated[Text, Field(max_length=200, examples=["1"])]


class LoginResponse(BaseModel):
    token: str


class ErrorBody(BaseModel):
    error: str
    code: str


class StatusBody(BaseModel):
    status: int
    message: str


class SyncRequest(Request):
    madonvi: Unit
    tungay: Day = None
    denngay: Day = None


class Attachment(BaseModel):
    matailieu: str
    tentailieu: str
    url_file: str
    ten_file: str


class Dossier(BaseModel):
    mahoso: str
    tentochuccanhan: str
    ngaynhan: str
    mathutuc: str
    tenthutuc: str
    file_dinh_kem: list[Attachment]


class DossierCode(Request):
    mahoso: Code


class MarkRequest(Request):
    madonvi: Unit
    # The document's table calls dataHoso a String: a JSON-encoded list is accepted too.
    dataHoso: (
        Annotated[list[DossierCode], Field(max_length=MAX_MARKS)] | Annotated[Text, Field(max_length=MAX_MARKS * 250)]
    )


class CatalogRequest(Request):
    madonvi: Unit | None = None


class DocumentType(BaseModel):
    maloaitailieu: str
    tenloaitailieu: str


class FileRef(Request):
    matailieu: Code
    url_file: Annotated[Text | None, Field(default=None, max_length=4000)] = None


class FileMarkRequest(Request):
    madonvi: Unit
    mahoso: Code
    dataFile: Annotated[list[FileRef], Field(min_length=1, max_length=1000)]


class FileReplaceRequest(Request):
    madonvi: Unit
    mahoso: Code
    matailieu: Code
    ten_file: Annotated[Text, Field(min_length=1, max_length=500)]
    tentailieu: Annotated[Text | None, Field(default=None, max_length=2000)] = None
    noidung_base64: Annotated[str, Field(max_length=(MAX_UPLOAD + 2) // 3 * 4 + 4)]


class FileReplaceResponse(StatusBody):
    url_file: str


class FileDeleteRequest(Request):
    madonvi: Unit
    mahoso: Code
    matailieu: Code
