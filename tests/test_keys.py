"""Object keys: deterministic, safe for any input, and distinct for distinct attachments."""

from __future__ import annotations

import unicodedata

from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from shared.onestop.models import Attachment
from shared.storage.keys import SEGMENT_BYTES, object_key, slug

UNIT = "000.00.17.H55"
DOSSIER = "000.00.17.H55-200917-0013"
URL = ("http://motcua.thainguyen.gov.vn/thainguyen/general/public/attach-file/000.00.17.H55/2020/10/19/"
       "2020_10_19_031048885!~!file_dinh_kem.pdf")
# Computed by the key function before url_file was hashed exactly: the key of stored data must not move.
KNOWN_KEY = "000.00.17.H55/000.00.17.H55-201019-2022/000.00.00.G12-KQ5586/a9487788f8df1d56-Giay-to-khac.pdf"


def attachment(matailieu="000.00.00.G12-KQ5586", url_file=URL, ten_file="file_dinh_kem.pdf") -> Attachment:
    # model_construct skips validation: the key must be safe even for input the model would reject.
    return Attachment.model_construct(matailieu=matailieu, tentailieu="", url_file=url_file, ten_file=ten_file)


def assert_valid(key: str, unit: str) -> None:
    assert len(key.encode("utf-8")) <= 1024
    assert key.isascii() and key.isprintable()
    segments = key.split("/")
    assert len(segments) == 4
    for segment in segments:
        assert segment and segment not in (".", "..")
        assert not segment.startswith(".")
        assert ".." not in segment
        assert "\\" not in segment
        assert len(segment.encode()) <= SEGMENT_BYTES
    assert key.startswith(slug(unit, SEGMENT_BYTES) + "/")


# -- examples -----------------------------------------------------------------------------------------


def test_the_documents_sample_gives_a_readable_key():
    key = object_key(UNIT, DOSSIER, attachment())
    unit, dossier, document, name = key.split("/")
    assert (unit, dossier, document) == (UNIT, DOSSIER, "000.00.00.G12-KQ5586")
    digest, _, rest = name.partition("-")
    assert len(digest) == 16 and int(digest, 16) >= 0
    assert rest == "file_dinh_kem.pdf"


def test_vietnamese_names_are_folded_to_ascii_and_keep_their_extension():
    key = object_key(UNIT, DOSSIER, attachment(ten_file="Giấy chứng nhận Đăng ký.PDF"))
    assert key.endswith("-Giay-chung-nhan-Dang-ky.pdf")


def test_path_tricks_cannot_escape_their_segment():
    for name in ["../../etc/passwd", "..\\..\\windows", "/abs/path.pdf", ".hidden", "..", ".", "a\x00b.pdf",
                 "evil\u202egnp.pdf", "zero\u200bwidth.pdf", "full\uff0fwidth\uff0e\uff0e.pdf", "\u2024\u2024"]:
        for unit in [UNIT, "../..", "/", "..\\", "\x00", ""]:
            key = object_key(unit, "../" + name, attachment(matailieu=name, ten_file=name))
            assert_valid(key, unit)
    assert object_key(UNIT, DOSSIER, attachment(ten_file="evil\u202egnp.pdf")).endswith("-evil-gnp.pdf")


def test_a_very_long_name_is_cut_but_keeps_its_extension():
    key = object_key(UNIT, DOSSIER, attachment(ten_file="Tờ khai " * 2000 + ".docx"))
    assert_valid(key, UNIT)
    assert key.endswith(".docx")


def test_a_name_without_ten_file_comes_from_the_url():
    key = object_key(UNIT, DOSSIER, attachment(ten_file=""))
    assert key.endswith("-2020_10_19_031048885-file_dinh_kem.pdf")


def test_same_named_files_of_one_dossier_stay_apart():
    first = object_key(UNIT, DOSSIER, attachment(url_file=URL + "?v=1", ten_file="scan.pdf"))
    second = object_key(UNIT, DOSSIER, attachment(url_file=URL + "?v=2", ten_file="scan.pdf"))
    assert first != second


def test_names_whose_slugs_collide_stay_apart():
    a = object_key(UNIT, DOSSIER, attachment(ten_file="Tờ khai.pdf"))
    b = object_key(UNIT, DOSSIER, attachment(ten_file="To khai.pdf"))
    assert a != b and a.rsplit("-", 2)[-2:] == b.rsplit("-", 2)[-2:]


def test_nfc_and_nfd_spellings_give_one_key():
    name = "Quyết định số 12.pdf"
    nfc = object_key(UNIT, DOSSIER, attachment(ten_file=unicodedata.normalize("NFC", name)))
    nfd = object_key(UNIT, DOSSIER, attachment(ten_file=unicodedata.normalize("NFD", name)))
    assert nfc == nfd


def test_urls_differing_only_in_nfc_and_nfd_get_two_keys():
    # Two request paths on the wire, possibly two different files: one must never replace the other.
    url = "http://files.example/attach-file/Quyết định.pdf"
    nfc = object_key(UNIT, DOSSIER, attachment(url_file=unicodedata.normalize("NFC", url)))
    nfd = object_key(UNIT, DOSSIER, attachment(url_file=unicodedata.normalize("NFD", url)))
    assert nfc != nfd


def test_keys_of_nfc_entries_are_unchanged():
    # The key of an all-NFC entry is what it was before url_file was hashed exactly: stored data stays put.
    entry = attachment(url_file="http://files.example/attach-file/Giấy tờ khác.pdf", ten_file="Giấy tờ khác.pdf")
    assert object_key("000.00.17.H55", "000.00.17.H55-201019-2022", entry) == KNOWN_KEY


def test_an_entry_listed_twice_maps_to_one_key():
    assert object_key(UNIT, DOSSIER, attachment()) == object_key(UNIT, DOSSIER, attachment())


# -- properties ---------------------------------------------------------------------------------------

tricky = st.one_of(
    st.text(),
    st.text(alphabet=st.sampled_from(list("./\\\x00\x01\x7f\u202e\u200b\u2066\uff0f\uff0e\u2024 aĐđế")), max_size=60),
    st.builds(lambda s, n: s * n, st.text(min_size=1, max_size=5), st.integers(1000, 2000)),
    st.just("." * 10_000),
)

SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@SETTINGS
@given(unit=tricky, dossier=tricky, matailieu=tricky, url=tricky, name=tricky)
def test_any_input_gives_a_valid_key_under_its_unit(unit, dossier, matailieu, url, name):
    key = object_key(unit, dossier, attachment(matailieu, url, name))
    assert_valid(key, unit)
    assert key == object_key(unit, dossier, attachment(matailieu, url, name))


@SETTINGS
@given(unit=st.text(max_size=20), dossier=st.text(max_size=20), matailieu=st.text(max_size=20),
       url=st.text(max_size=40), name=st.text(max_size=40))
def test_nfc_and_nfd_names_give_the_same_key(unit, dossier, matailieu, url, name):
    def nf(form, *values):
        return [unicodedata.normalize(form, value) for value in values]

    u1, d1, m1, n1 = nf("NFC", unit, dossier, matailieu, name)
    u2, d2, m2, n2 = nf("NFD", unit, dossier, matailieu, name)
    assert object_key(u1, d1, attachment(m1, url, n1)) == object_key(u2, d2, attachment(m2, url, n2))
    url_nfc, url_nfd = nf("NFC", url) + nf("NFD", url)
    if url_nfc != url_nfd:
        assert object_key(u1, d1, attachment(m1, url_nfc, n1)) != object_key(u1, d1, attachment(m1, url_nfd, n1))


@SETTINGS
@given(first=st.tuples(*[st.text(max_size=12)] * 5), second=st.tuples(*[st.text(max_size=12)] * 5))
def test_distinct_entries_give_distinct_keys(first, second):
    def identity(entry):  # url_file (index 3) counts exactly, the names after NFC
        return tuple(value if index == 3 else unicodedata.normalize("NFC", value) for index, value in enumerate(entry))

    assume(identity(first) != identity(second))
    key_a = object_key(first[0], first[1], attachment(*first[2:]))
    key_b = object_key(second[0], second[1], attachment(*second[2:]))
    assert key_a != key_b


@SETTINGS
@given(st.sampled_from(["a", "A", "1", "-", "_", ".", "/", " ", "Đ"]).flatmap(
    lambda ch: st.tuples(st.just(ch), st.integers(0, 5))))
def test_entries_differing_only_in_separators_stay_apart(pair):
    ch, n = pair
    # "a/b" and "a-b" (and "a b") slug the same; only the digest keeps them apart.
    keys = {object_key(UNIT, DOSSIER, attachment(ten_file=f"x{sep * (n + 1)}{ch}.pdf")) for sep in "/- _"}
    assert len(keys) == 4
