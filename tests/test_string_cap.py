"""Strings over the cap are cut before the parser sees them, the rest of the body passes unchanged, and no
cut breaks an escape or a character, however the body is split into chunks."""

from __future__ import annotations

import io
import json

from hypothesis import given, settings
from hypothesis import strategies as st

from shared.onestop.dossier_items import ItemLimits, check_limits, message_bytes
from shared.onestop.models import Dossier, InvalidDossier
from shared.onestop.string_cap import CUT_MARK, StringCap
from shared.onestop.sync_response import MAX_STRING_BYTES, parse_dossiers

# Characters that make the cases: quotes and backslashes (escaped in JSON), control characters (\u escapes),
# Vietnamese letters (2 and 3 bytes in UTF-8), an emoji (4 bytes, or a surrogate pair when escaped).
TEXT = st.text(alphabet=st.sampled_from(list('ab "\\\n\x01ạưỹ😀/')), max_size=60)


def feed_in_chunks(data: bytes, sizes: list[int], cap: StringCap) -> bytes:
    out, at = [], 0
    for size in sizes:
        if at >= len(data):
            break
        out.append(cap.feed(data[at : at + size]))
        at += size
    out.append(cap.feed(data[at:]))
    return b"".join(out) + cap.flush()


@settings(max_examples=400, deadline=None)
@given(st.lists(TEXT, min_size=1, max_size=6), st.booleans(), st.integers(1, 70),
       st.lists(st.integers(1, 9), max_size=80))
def test_a_cut_keeps_the_json_valid_and_the_start_of_the_string(strings, ascii_only, limit, sizes):
    body = json.dumps(strings, ensure_ascii=ascii_only).encode()
    cut = json.loads(feed_in_chunks(body, sizes, StringCap(limit)))
    for original, read in zip(strings, cut, strict=True):
        if read.endswith(CUT_MARK.decode()):
            assert original.startswith(read.removesuffix(CUT_MARK.decode()))
            assert len(original.encode()) > 0
        else:
            assert read == original


@settings(max_examples=200, deadline=None)
@given(st.lists(TEXT, min_size=1, max_size=6), st.booleans(), st.lists(st.integers(1, 9), max_size=80))
def test_strings_under_the_cap_pass_byte_for_byte(strings, ascii_only, sizes):
    body = json.dumps({"items": strings, "n": 1}, ensure_ascii=ascii_only).encode()
    assert feed_in_chunks(body, sizes, StringCap(10_000)) == body


def test_a_giant_field_is_cut_and_its_dossier_refused_while_its_neighbours_come():
    neighbour = {"mahoso": "000.00.17.H55-240101-0002", "madonvi": "000.00.17.H55", "tentochuccanhan": "Trần Thị B",
                 "ngaynhan": "01/01/2024", "mathutuc": "1.0001", "tenthutuc": "Cấp phép", "file_dinh_kem": []}
    giant = dict(neighbour, mahoso="000.00.17.H55-240101-0001", tenthutuc="Thủ tục hành chính " * 2_000_000)
    body = json.dumps([giant, neighbour]).encode()  # escaped: ~78 MB, the worst case for the parser
    first, second = parse_dossiers(io.BytesIO(body), "000.00.17.H55")
    assert isinstance(first, Dossier) and first.tenthutuc.endswith(CUT_MARK.decode())
    assert len(first.tenthutuc.encode()) <= MAX_STRING_BYTES + len(CUT_MARK)
    refused = check_limits(first, ItemLimits(), message_bytes(first))
    assert isinstance(refused, InvalidDossier) and refused.reason == "field-too-long"
    assert isinstance(second, Dossier) and second.tenthutuc == "Cấp phép"
