"""`dongbo export` against an archive the pipeline filled: a BagIt bag per dossier that validates with
bagit's own validator, whose manifest is the recorded SHA-256, and which fails validation once a byte of
an exported file is flipped."""

from __future__ import annotations

import json

import bagit
import pytest

from shared.archive.bag_export import safe_name, unique_names
from tests.archive_support import Archive, filled_archive

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def archive(s3_server, rabbit_url):
    with filled_archive(s3_server, rabbit_url, dossiers=6) as filled:
        yield filled


def test_export_writes_a_valid_bag_per_dossier(archive: Archive, tmp_path):
    out = tmp_path / "bags"
    report = archive.dongbo_json("export", *archive.window, str(out))
    dossiers = archive.sql("SELECT * FROM ho_so ORDER BY mahoso")
    assert len(report["bags"]) == len(dossiers) == 6 and report["failed"] == {}
    rows = archive.sql("SELECT * FROM tai_lieu")
    for path in report["bags"]:
        bag = bagit.Bag(path)
        bag.validate()  # every checksum recomputed
        with open(f"{path}/metadata.json", encoding="utf-8") as f:
            meta = json.load(f)
        mine = [r for r in rows if r["mahoso"] == meta["mahoso"]]
        dossier = next(d for d in dossiers if d["mahoso"] == meta["mahoso"])
        # The manifest is exactly the record of tai_lieu.
        assert sorted(h["sha256"] for p, h in bag.entries.items() if p.startswith("data/")) == sorted(
            r["sha256"] for r in mine)
        assert meta["document_count"] == len(mine) == len(meta["files"])
        assert meta["tentochuccanhan"] == dossier["tentochuccanhan"] and meta["madonvi"] == archive.unit
        assert meta["ngaynhan"] == dossier["ngaynhan"].strftime("%d/%m/%Y") and meta["language"] == "vi"
        assert {f["ten_file"] for f in meta["files"]} == {r["ten_file"] for r in mine}
        assert all(f["path"] in bag.entries for f in meta["files"])
        assert bag.info["Ma-Ho-So"] == meta["mahoso"] and bag.info["So-Luong-Tai-Lieu"] == str(len(mine))
        assert "metadata.json" in (out / path / "tagmanifest-sha256.txt").read_text(encoding="utf-8")
    # Files keep their Vietnamese names.
    names = [f.name for path in report["bags"] for f in (out / path).joinpath("data").iterdir()]
    assert any(not name.isascii() for name in names)

    again = archive.dongbo_json("export", *archive.window, str(out))
    assert again["bags"] == [] and len(again["skipped"]) == 6


def test_a_flipped_byte_fails_validation(archive: Archive, tmp_path):
    report = archive.dongbo_json("export", *archive.window, str(tmp_path))
    bag_path = report["bags"][0]
    victim = sorted((tmp_path / bag_path / "data").iterdir())[0]
    data = bytearray(victim.read_bytes())
    data[len(data) // 3] ^= 0x01
    victim.write_bytes(bytes(data))
    with pytest.raises(bagit.BagValidationError):
        bagit.Bag(bag_path).validate()


def test_an_object_with_other_bytes_is_not_exported(archive: Archive, tmp_path):
    import io

    key = archive.sql("SELECT object_key FROM tai_lieu ORDER BY id LIMIT 1")[0]["object_key"]
    original = archive.object_bytes(key)
    client = archive.s3.client()
    client.put_object(archive.bucket, key, io.BytesIO(original[:-1] + b"!"), len(original))
    try:
        report = archive.dongbo_json("export", *archive.window, str(tmp_path), expect=1)
    finally:
        client.put_object(archive.bucket, key, io.BytesIO(original), len(original))
    assert len(report["failed"]) == 1 and key in next(iter(report["failed"].values()))
    assert len(report["bags"]) == 5 and not [p for p in tmp_path.iterdir() if p.name.startswith(".partial")]


def test_names_are_safe_and_unique():
    assert safe_name("Tờ khai/../../etc/passwd", "x") == "Tờ khai_.._.._etc_passwd"
    assert safe_name("  \x00 ", "TK01.bin") == "TK01.bin"
    assert len(safe_name("Quyết định " * 40 + ".pdf", "x").encode()) <= 200
    assert safe_name("Quyết định " * 40 + ".pdf", "x").endswith(".pdf")
    assert unique_names(["a.pdf", "A.pdf", "a.pdf", "b"]) == ["a.pdf", "A (2).pdf", "a (3).pdf", "b"]
