"""The streaming parser of the sync response, fed from bytes: every shape SPEC.md lists, and what breaks."""

from __future__ import annotations

import io
import json
import time
import tracemalloc
import unicodedata
from collections.abc import Iterator
from datetime import date

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shared.errors import (
    DongboError,
    MalformedResponse,
    OneStopError,
    OneStopUnavailable,
    ResponseTooLarge,
    TokenExpired,
    TransientError,
    TruncatedBody,
)
from shared.onestop import Dossier, InvalidDossier, parse_dossiers
from shared.onestop.response_bodies import status_ok

UNIT = "000.00.17.H55"

# The document's sample dossier, written as valid JSON (the document's own is not).
SPEC_FILES = [
    {
        "matailieu": "000.00.00.G12-KQ5586",
        "tentailieu": "- Các văn bản, giấy tờ khác có liên quan (nếu có): 01 bản sao.",
        "url_file": "http://motcua.thainguyen.gov.vn/thainguyen/general/public/attach-file/000.00.17.H55/2020/10/19/2020_10_19_031048885!~!file_dinh_kem.pdf",
        "ten_file": "file_dinh_kem.pdf",
    },
    {
        "matailieu": "000.00.00.G12-KQ5585",
        "tentailieu": "Giấy giới thiệu kèm theo công văn đề nghị mua hóa đơn do người đứng đầu cơ quan ký, "
        "đóng dấu: 01 bản chính",
        "url_file": "http://motcua.thainguyen.gov.vn/thainguyen/general/public/attach-file/000.00.17.H55/2020/10/19/2020_10_19_031048885!~!file_dinh_kem2.pdf",
        "ten_file": "file_dinh_kem2.pdf",
    },
    {
        "matailieu": "FILE_TRA_KET_QUA",
        "tentailieu": "File trả kết quả",
        "url_file": "http://motcua.thainguyen.gov.vn/thainguyen/general/public/attach-file/000.00.17.H55/2020/10/19/2020_10_19_031048885!~!file_dinh_kem3.pdf",
        "ten_file": "file_dinh_kem3.pdf",
    },
]
SPEC_DOSSIER = {
    "mahoso": "000.00.17.H55-200917-0013",
    "tentochuccanhan": "ĐOÀN THÚY HẢI",
    "ngaynhan": "17/09/2020",
    "mathutuc": "1.005434.000.00.00.H55",
    "tenthutuc": "Mua quyền hóa đơn",
    "file_dinh_kem": SPEC_FILES,
}


def parse(body: bytes | object, madonvi: str = UNIT, **options) -> list[Dossier | InvalidDossier]:
    data = body if isinstance(body, bytes) else json.dumps(body, ensure_ascii=False).encode()
    return list(parse_dossiers(io.BytesIO(data), madonvi, **options))


def dossier(mahoso: str = "000.00.17.H55-200917-0014", **fields) -> dict:
    return {**SPEC_DOSSIER, "mahoso": mahoso, **fields}


# -- shapes of the whole response -------------------------------------------------------------------


@pytest.mark.parametrize(
    "wrap",
    [
        lambda items: items,
        lambda items: {"data": items},
        lambda items: {"result": items},
        lambda items: {"items": items},
        lambda items: {"status": 200, "message": "Thành công", "total": 2, "danhsach": items},
        lambda items: {"meta": {"page": 1}, "data": items, "error": None},
    ],
    ids=["array", "data", "result", "items", "any-key-after-values", "after-an-object"],
)
def test_every_wrapping_of_the_list(wrap):
    got = parse(wrap([SPEC_DOSSIER, dossier()]))
    assert [d.mahoso for d in got] == ["000.00.17.H55-200917-0013", "000.00.17.H55-200917-0014"]
    assert all(isinstance(d, Dossier) for d in got)


def test_the_spec_sample_reads_as_the_document_means_it():
    [got] = parse([SPEC_DOSSIER])
    assert got.madonvi == UNIT  # not in the response: filled from the request
    assert got.tentochuccanhan == "ĐOÀN THÚY HẢI"
    assert got.ngaynhan == date(2020, 9, 17)
    assert got.mathutuc == "1.005434.000.00.00.H55"
    assert [f.matailieu for f in got.file_dinh_kem] == [
        "000.00.00.G12-KQ5586",
        "000.00.00.G12-KQ5585",
        "FILE_TRA_KET_QUA",
    ]
    first = got.file_dinh_kem[0]
    assert first.url_file.endswith("2020_10_19_031048885!~!file_dinh_kem.pdf")
    assert first.ten_file == "file_dinh_kem.pdf"
    assert first.tentailieu == "- Các văn bản, giấy tờ khác có liên quan (nếu có): 01 bản sao."


@pytest.mark.parametrize(
    "files",
    [
        SPEC_FILES,
        {"data": SPEC_FILES},
        {"files": SPEC_FILES},
        json.dumps(SPEC_FILES, ensure_ascii=False),
        json.dumps({"data": SPEC_FILES}),
        json.dumps(json.dumps(SPEC_FILES)),  # JSON text of JSON text
    ],
    ids=["array", "object-data", "object-files", "string-array", "string-object", "string-of-string"],
)
def test_file_dinh_kem_in_every_shape(files):
    [got] = parse([dossier(file_dinh_kem=files)])
    assert isinstance(got, Dossier)
    assert [f.ten_file for f in got.file_dinh_kem] == ["file_dinh_kem.pdf", "file_dinh_kem2.pdf", "file_dinh_kem3.pdf"]


@pytest.mark.parametrize("files", ["", "  ", None, [], {}, "[]", "null", {"data": None}], ids=repr)
def test_no_files(files):
    [got] = parse([dossier(file_dinh_kem=files)])
    assert isinstance(got, Dossier) and got.file_dinh_kem == []


def test_missing_file_dinh_kem_means_no_files():
    item = dossier()
    del item["file_dinh_kem"]
    [got] = parse([item])
    assert isinstance(got, Dossier) and got.file_dinh_kem == []


def test_a_single_file_object_not_wrapped_in_a_list():
    [got] = parse([dossier(file_dinh_kem=SPEC_FILES[2])])
    assert [f.matailieu for f in got.file_dinh_kem] == ["FILE_TRA_KET_QUA"]


def test_the_same_matailieu_or_file_name_twice_is_kept():
    [got] = parse([dossier(file_dinh_kem=[SPEC_FILES[0], SPEC_FILES[0]])])
    assert len(got.file_dinh_kem) == 2


# -- text, dates, numbers ---------------------------------------------------------------------------


def test_nfd_names_become_nfc():
    nfd = lambda text: unicodedata.normalize("NFD", text)  # noqa: E731
    files = [{**SPEC_FILES[0], "ten_file": nfd("Giấy phép đăng ký.pdf"), "tentailieu": nfd("Văn bản")}]
    [got] = parse(
        [dossier(tentochuccanhan=nfd("ĐOÀN THÚY HẢI"), tenthutuc=nfd("Mua quyền hóa đơn"), file_dinh_kem=files)]
    )
    assert got.tentochuccanhan == "ĐOÀN THÚY HẢI" and unicodedata.is_normalized("NFC", got.tentochuccanhan)
    assert got.tenthutuc == "Mua quyền hóa đơn"
    assert got.file_dinh_kem[0].ten_file == "Giấy phép đăng ký.pdf"
    assert got.file_dinh_kem[0].tentailieu == "Văn bản"


@pytest.mark.parametrize(
    "text, day",
    [
        ("17/09/2020", date(2020, 9, 17)),
        ("1/2/2020", date(2020, 2, 1)),
        ("17/09/2020 08:30:00", date(2020, 9, 17)),
        ("2020-09-17", date(2020, 9, 17)),
        ("", None),
        (None, None),
    ],
)
def test_dates_are_day_month_year(text, day):
    [got] = parse([dossier(ngaynhan=text)])
    assert got.ngaynhan == day


@pytest.mark.parametrize("text", ["31/02/2020", "09/17/2020x", "hôm qua", 20200917])
def test_a_wrong_date_makes_that_dossier_invalid(text):
    [got] = parse([dossier(ngaynhan=text)])
    assert isinstance(got, InvalidDossier) and "ngaynhan" in got.error


def test_numbers_become_codes():
    body = (
        b'[{"mahoso": 2009170013, "mathutuc": 1.10, "file_dinh_kem": [{"matailieu": 5586, "url_file": "http://a/b"}]}]'
    )
    [got] = parse(body)
    assert got.mahoso == "2009170013"
    assert got.mathutuc == "1.10"  # the digits as sent, not the float 1.1
    assert got.file_dinh_kem[0].matailieu == "5586"


def test_a_dossier_keeps_its_own_unit():
    [got] = parse([dossier(madonvi="000.00.12.H55")])
    assert got.madonvi == "000.00.12.H55"


# -- bad dossiers among good ones -------------------------------------------------------------------


def test_an_invalid_dossier_between_two_valid_ones():
    bad = dossier("000.00.17.H55-200917-0099", file_dinh_kem=[{"tentailieu": "no code, no url"}])
    got = parse({"data": [SPEC_DOSSIER, bad, dossier()]})
    assert [type(d) for d in got] == [Dossier, InvalidDossier, Dossier]
    invalid = got[1]
    assert invalid.mahoso == "000.00.17.H55-200917-0099" and invalid.madonvi == UNIT
    assert "file_dinh_kem.0.matailieu" in invalid.error and "file_dinh_kem.0.url_file" in invalid.error
    assert invalid.reason == "malformed-dossier"
    assert invalid.raw["mahoso"] == "000.00.17.H55-200917-0099"
    json.dumps(invalid.raw)  # can go to the dead-letter queue as it is


@pytest.mark.parametrize(
    "item, words",
    [
        ({"tentochuccanhan": "no code"}, "mahoso"),
        ({"mahoso": "   "}, "mahoso"),
        ({"mahoso": "A", "file_dinh_kem": "not json"}, "not JSON"),
        ({"mahoso": "A", "file_dinh_kem": 42}, "not a number"),
        ({"mahoso": "A", "file_dinh_kem": {"note": "x"}}, "without a list"),
        ({"mahoso": "A", "file_dinh_kem": [{"matailieu": "X", "url_file": " "}]}, "url_file"),
        ("a string", "not text"),
        ([1, 2], "not a list"),
        (None, "not null"),
    ],
)
def test_what_makes_a_dossier_invalid(item, words):
    [got] = parse([item])
    assert isinstance(got, InvalidDossier)
    assert words in got.error


def test_too_many_files():
    files = [{**SPEC_FILES[0], "matailieu": f"KQ{i}"} for i in range(6)]
    got = parse([dossier(file_dinh_kem=files), SPEC_DOSSIER], max_files_per_dossier=5)
    assert isinstance(got[0], InvalidDossier) and got[0].reason == "too-many-files"
    assert "6 files" in got[0].error and "limit of 5" in got[0].error
    assert isinstance(got[1], Dossier)


# -- errors and empty results -----------------------------------------------------------------------


def test_an_error_body_raises_with_its_message():
    with pytest.raises(OneStopError, match="Đơn vị không tồn tại") as caught:
        parse({"error": "Đơn vị không tồn tại", "code": "400"})
    assert not isinstance(caught.value, TransientError)


@pytest.mark.parametrize(
    "body",
    [
        {"error": "Token hết hạn", "code": "401"},
        {"error": "Unauthorized", "code": 403},
        {"status": 401, "message": "Phiên đăng nhập không hợp lệ"},
        {"error": "Token không hợp lệ", "code": "400"},
    ],
)
def test_a_token_error_body(body):
    with pytest.raises(TokenExpired):
        parse(body)


def test_a_server_fault_in_the_body_is_transient():
    with pytest.raises(OneStopUnavailable, match="Lỗi hệ thống"):
        parse({"error": "Lỗi hệ thống", "code": "500"})


def test_an_error_before_the_list_wins():
    with pytest.raises(OneStopError, match="sai"):
        parse({"error": "sai", "data": [SPEC_DOSSIER]})


NO_DATA = ' \n {"status": 200, "message": "Không có dữ liệu"} '.encode()


@pytest.mark.parametrize("body", [b"[]", b'{"data": []}', b"{}", NO_DATA, b'{"data": null}'])
def test_empty_results(body):
    assert parse(body) == []


@pytest.mark.parametrize("body", [b"", b"   \r\n", b"\xef\xbb\xbf"])
def test_an_empty_body_is_an_error_not_an_empty_result(body):
    with pytest.raises(MalformedResponse, match="empty"):
        parse(body)


def test_a_byte_order_mark_is_skipped():
    assert len(parse(b"\xef\xbb\xbf" + json.dumps([SPEC_DOSSIER]).encode())) == 1


@pytest.mark.parametrize(
    "body", [b"null", b'"[]"', b"42", b"<html>502 Bad Gateway</html>", b'{"data": [}', b"[1, 2] [3]"]
)
def test_not_a_response(body):
    with pytest.raises(MalformedResponse):
        parse(body)


class Trickle:
    """A source that hands out one byte per read, as a slow link might."""

    def __init__(self, data: bytes):
        self._data = io.BytesIO(data)

    def read(self, size: int = -1) -> bytes:
        return self._data.read(min(size, 1) if size >= 0 else 1)


@pytest.mark.parametrize(
    "body", [[SPEC_DOSSIER, dossier()], {"status": 200, "data": [SPEC_DOSSIER, dossier()]}], ids=["array", "object"]
)
def test_short_reads(body):
    data = b"\xef\xbb\xbf \n" + json.dumps(body).encode()
    got = list(parse_dossiers(Trickle(data), UNIT))
    assert [d.mahoso for d in got] == [SPEC_DOSSIER["mahoso"], "000.00.17.H55-200917-0014"]


def test_the_list_after_a_long_preamble():
    body = {"message": "x" * 300_000, "meta": {"note": "y" * 100_000}, "data": [SPEC_DOSSIER]}
    assert [d.mahoso for d in parse(body)] == [SPEC_DOSSIER["mahoso"]]


def test_a_list_hidden_deeper_is_not_taken_for_no_dossiers():
    with pytest.raises(MalformedResponse, match="without a list"):
        parse({"result": {"data": [SPEC_DOSSIER]}})


@pytest.mark.parametrize("cut", [1, 10, 100, 500, -2, -1])
def test_a_truncated_body_raises_a_transient_error(cut):
    body = json.dumps({"data": [SPEC_DOSSIER, dossier()]}).encode()
    with pytest.raises(TransientError):
        parse(body[:cut])


def test_truncation_after_some_dossiers_still_raises():
    body = json.dumps([SPEC_DOSSIER, dossier()]).encode()
    cut = body.index(b'"000.00.17.H55-200917-0014"') + 5
    items = parse_dossiers(io.BytesIO(body[:cut]), UNIT)
    assert next(items).mahoso == SPEC_DOSSIER["mahoso"]
    with pytest.raises(TruncatedBody, match="ended early"):
        next(items)


def test_a_body_over_the_limit():
    body = json.dumps([SPEC_DOSSIER] * 50).encode()
    with pytest.raises(ResponseTooLarge):
        parse(body, max_bytes=len(body) - 1)
    assert len(parse(body, max_bytes=len(body))) == 50


@pytest.mark.parametrize(
    "body, ok",
    [
        ({"status": 200, "message": "Cập nhật thành công"}, True),
        ({"status": "200", "message": "Cập nhật thành công"}, True),
        ({"status": 201}, False),
        ({"status": "thành công"}, False),
        ({"message": "Cập nhật thành công"}, False),
        ({"status": 200, "error": "nhưng lỗi"}, False),
        ([], False),
    ],
)
def test_an_update_worked_only_with_status_200_in_its_body(body, ok):
    assert status_ok(body) is ok


# -- properties -------------------------------------------------------------------------------------

DOSSIER_KEYS = [
    "mahoso",
    "madonvi",
    "ngaynhan",
    "file_dinh_kem",
    "matailieu",
    "url_file",
    "data",
    "error",
    "code",
    "status",
]
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=5)
        | st.dictionaries(st.sampled_from(DOSSIER_KEYS) | st.text(max_size=8), inner, max_size=6)
    ),
    max_leaves=40,
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(value=json_values, cut=st.none() | st.integers(min_value=0, max_value=400), ascii_only=st.booleans())
def test_any_json_gives_dossiers_or_a_dongbo_error(value, cut, ascii_only):
    body = json.dumps(value, ensure_ascii=ascii_only).encode()
    if cut is not None:
        body = body[:cut]
    try:
        for item in parse(body):
            assert isinstance(item, (Dossier, InvalidDossier))
    except DongboError:
        pass


VIETNAMESE = "aăâbcdđeêghiklmnoôơpqrstuưvxyáàảãạấầẩẫậắằẳẵặéèẻẽẹếềểễệíìỉĩịóòỏõọốồổỗộớờởỡợúùủũụứừửữựýỳỷỹỵĐÂĂÊÔƠƯ -/.,()"
codes = st.from_regex(r"[0-9A-Z][0-9A-Z.\-_]{0,30}", fullmatch=True)
names = st.text(alphabet=VIETNAMESE, max_size=40)
attachments = st.fixed_dictionaries(
    {
        "matailieu": codes,
        "tentailieu": names,
        "url_file": st.builds(
            lambda n, name: f"http://motcua.example.gov.vn/attach-file/{n}!~!{name}.pdf", st.integers(0, 10**6), codes
        ),
        "ten_file": names,
    }
)
dossiers = st.fixed_dictionaries(
    {
        "mahoso": codes,
        "tentochuccanhan": names,
        "ngaynhan": st.dates(date(2000, 1, 1), date(2030, 12, 31)).map(lambda d: d.strftime("%d/%m/%Y")),
        "mathutuc": codes,
        "tenthutuc": names,
        "file_dinh_kem": st.lists(attachments, max_size=4),
    }
)
WRAPS = [
    lambda items: items,
    lambda items: {"data": items},
    lambda items: {"result": items},
    lambda items: {"status": 200, "message": "OK", "items": items},
]
FILE_SHAPES = [
    lambda files: files,
    lambda files: {"data": files},
    lambda files: json.dumps(files, ensure_ascii=False),
    lambda files: json.dumps({"data": files}),
    lambda files: files or None,  # null for no files
    lambda files: files or "",  # empty text for no files
]


@settings(max_examples=100, deadline=None)
@given(
    items=st.lists(dossiers, max_size=6),
    wrap=st.sampled_from(WRAPS),
    shape=st.sampled_from(FILE_SHAPES),
    drop_empty=st.booleans(),
)
def test_every_shape_parses_back_to_the_same_dossiers(items, wrap, shape, drop_empty):
    expected = [Dossier.model_validate({**item, "madonvi": UNIT}) for item in items]
    sent = []
    for item in items:
        item = {**item, "file_dinh_kem": shape(item["file_dinh_kem"])}
        if drop_empty and not item["file_dinh_kem"]:
            del item["file_dinh_kem"]
        sent.append(item)
    assert parse(wrap(sent)) == expected


# -- memory -----------------------------------------------------------------------------------------


class GeneratedBody:
    """A file-like body made on the fly, so the test itself holds no big blob."""

    def __init__(self, chunks: Iterator[bytes]):
        self._chunks = chunks
        self._buffer = b""
        self.size = 0

    def read(self, size: int = -1) -> bytes:
        while size < 0 or len(self._buffer) < size:
            chunk = next(self._chunks, None)
            if chunk is None:
                break
            self._buffer += chunk
        size = len(self._buffer) if size < 0 else size
        out, self._buffer = self._buffer[:size], self._buffer[size:]
        self.size += len(out)
        return out


BATCH = 500
# 500 dossiers at a time from one template, so that making the body costs little next to parsing it.
ONE = '{"mahoso": "000.00.17.H55-200917-%07d", "tentochuccanhan": "ĐOÀN THÚY HẢI", "ngaynhan": "17/09/2020"}'
TEMPLATE = ",".join([ONE] * BATCH)


def generated_dossiers(count: int) -> Iterator[bytes]:
    assert count % BATCH == 0
    yield b'{"status": 200, "data": ['
    for start in range(0, count, BATCH):
        yield (("," if start else "") + TEMPLATE % tuple(range(start, start + BATCH))).encode()
    yield b"]}"


def test_200000_dossiers_in_bounded_memory():
    count = 200_000
    body = GeneratedBody(generated_dossiers(count))
    started = time.monotonic()
    tracemalloc.start()
    try:
        seen = 0
        for item in parse_dossiers(body, UNIT):
            assert isinstance(item, Dossier)
            seen += 1
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert seen == count
    assert peak < 20 * 1024**2, f"peak {peak / 1024**2:.1f} MiB while reading {body.size / 1024**2:.0f} MiB"
    took = time.monotonic() - started
    print(f"{count} dossiers, {body.size / 1024**2:.0f} MiB, peak {peak / 1024**2:.2f} MiB, {took:.1f}s")
