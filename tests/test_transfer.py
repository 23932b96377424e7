"""One attachment from a real HTTP server into a real S3 bucket: stored, verified, skipped, never half-done."""

from __future__ import annotations

import hashlib
import logging
import random
import tracemalloc
from datetime import UTC, datetime, timedelta

import pytest
from minio import Minio
from minio.error import S3Error

from harness.fileserver import FileServer
from harness.services import free_port, wait_for
from services.downloader.http_fetch import FileSource
from services.downloader.transfer import store_attachment
from shared.errors import FileNotFound, FileTooLarge, StorageUnavailable, TruncatedBody
from shared.onestop.models import Attachment
from shared.settings import load_settings
from shared.storage import LIFECYCLE_RULE_ID, ObjectStore
from shared.storage.keys import object_key

MiB = 1024**2
PART = 5 * MiB
UNIT = "000.00.17.H55"
DOSSIER = "000.00.17.H55-201019-2022"
PDF = b"%PDF-1.4\n" + random.Random(1).randbytes(300_000)


@pytest.fixture
def server():
    with FileServer() as running:
        yield running


@pytest.fixture
def source():
    fetcher = FileSource(frozenset({"127.0.0.1"}), max_bytes=128 * MiB, connect_timeout=2.0, read_timeout=5.0)
    yield fetcher
    fetcher.close()


@pytest.fixture
def store(s3_server, bucket) -> ObjectStore:
    return ObjectStore(s3_server.client(), bucket, part_size=PART)


def attachment(url: str, ten_file: str = "Giấy tờ khác.pdf", matailieu: str = "000.00.00.G12-KQ5586") -> Attachment:
    return Attachment(matailieu=matailieu, tentailieu="- Các văn bản, giấy tờ khác có liên quan", url_file=url,
                      ten_file=ten_file)


def uploads(client: Minio, bucket: str) -> list:
    return client._list_multipart_uploads(bucket).uploads


def exists(client: Minio, bucket: str, key: str) -> bool:
    try:
        client.stat_object(bucket, key)
        return True
    except S3Error as exc:
        assert exc.code == "NoSuchKey"
        return False


# -- storing ------------------------------------------------------------------------------------------


def test_stores_a_file_with_its_hash_size_and_type(server, source, store):
    url = server.file("/attach-file/2020_10_19_031048885!~!Giấy tờ khác.pdf", PDF, ETag='"v1"')
    item = attachment(url)
    stored = store_attachment(source, store, UNIT, DOSSIER, item, part_size=PART)

    assert stored.object_key == object_key(UNIT, DOSSIER, item)
    assert stored.sha256 == hashlib.sha256(PDF).hexdigest()
    assert stored.size == len(PDF)
    assert (stored.content_type, stored.content_type_mismatch) == ("application/pdf", False)
    assert (stored.matailieu, stored.ten_file, stored.url_file) == (item.matailieu, item.ten_file, url)
    client = store.client
    assert client.get_object(store.bucket, stored.object_key).read() == PDF
    assert client.get_object_tags(store.bucket, stored.object_key)["sha256"] == stored.sha256
    stat = client.stat_object(store.bucket, stored.object_key)
    assert stat.metadata["X-Amz-Meta-Source-Etag"] == '"v1"'
    assert (
        stat.metadata["Content-Disposition"] == "attachment; filename*=UTF-8''Gi%E1%BA%A5y%20t%E1%BB%9D%20kh%C3%A1c.pdf"
    )


def test_a_second_call_skips_the_file_already_stored(server, source, store, monkeypatch):
    url = server.file("/a.pdf", PDF, ETag='"v1"')
    first = store_attachment(source, store, UNIT, DOSSIER, attachment(url), part_size=PART)
    before = store.client.stat_object(store.bucket, first.object_key)
    # Let the clock pass the store's one-second resolution, so a second upload would show.
    wait_for(lambda: datetime.now(UTC) >= before.last_modified + timedelta(seconds=1.1), timeout=3)

    puts = []
    real_put = store.put_stream
    monkeypatch.setattr(store, "put_stream", lambda *a, **k: puts.append(a) or real_put(*a, **k))
    second = store_attachment(source, store, UNIT, DOSSIER, attachment(url), part_size=PART)

    assert puts == []
    assert server.hits["/a.pdf"] == 2  # one GET each; the second only for its headers
    after = store.client.stat_object(store.bucket, first.object_key)
    assert (after.last_modified, after.etag) == (before.last_modified, before.etag)
    assert second.model_dump(exclude={"stored_at"}) == first.model_dump(exclude={"stored_at"})


def test_the_first_try_of_a_new_dossier_asks_the_store_nothing_and_any_later_try_does(
    server, source, store, monkeypatch
):
    """The fetcher marks a dossier it never handed on before; only that dossier's first delivery skips
    the lookup of stored copies. A redelivery or a retry looks, and skips what is already there."""
    from services.downloader.handler import DownloadHandler
    from shared.broker.outcome import Delivery
    from shared.broker.publisher import NEW_DOSSIER_HEADER
    from shared.db.engine import make_engine
    from shared.messages import DossierFetched

    url = server.file("/n.pdf", PDF, ETag='"v1"')
    message = DossierFetched(mahoso=DOSSIER, madonvi=UNIT, files=[attachment(url)])
    lookups = []
    real_find = store.find_complete
    monkeypatch.setattr(store, "find_complete", lambda key: lookups.append(key) or real_find(key))
    handler = DownloadHandler(source, store, make_engine("sqlite://"), part_size=PART, max_files=10)

    def deliver(**fields):
        return handler(Delivery(tag=1, body=message.to_bytes(), **fields)).publish[0][1].files[0]

    first = deliver(headers={NEW_DOSSIER_HEADER: True})
    assert lookups == [] and server.hits["/n.pdf"] == 1
    again = deliver(headers={NEW_DOSSIER_HEADER: True}, redelivered=True)
    retried = deliver(headers={NEW_DOSSIER_HEADER: True, "x-dongbo-attempt": 1}, attempt=1)
    known = deliver(headers={})
    assert lookups == [first.object_key] * 3
    assert again.sha256 == retried.sha256 == known.sha256 == first.sha256 == hashlib.sha256(PDF).hexdigest()


def test_a_changed_source_is_stored_again_under_a_new_key(server, source, store):
    server.file("/a.pdf", PDF, ETag='"v1"')
    first = store_attachment(source, store, UNIT, DOSSIER, attachment(server.url("/a.pdf")), part_size=PART)
    changed = PDF[:-1] + b"!"  # same length, new ETag
    server.file("/a.pdf", changed, ETag='"v2"')
    second = store_attachment(source, store, UNIT, DOSSIER, attachment(server.url("/a.pdf")), part_size=PART)
    # Nothing archived is overwritten: the earlier version stays under its key, the new bytes get their own.
    assert second.object_key != first.object_key
    assert second.sha256 == hashlib.sha256(changed).hexdigest() != first.sha256
    assert store.find_complete(first.object_key).sha256 == first.sha256
    assert store.find_complete(second.object_key).sha256 == second.sha256
    # Seen again, the changed file is found under that same new key, not stored a third time.
    again = store_attachment(source, store, UNIT, DOSSIER, attachment(server.url("/a.pdf")), part_size=PART)
    assert again.object_key == second.object_key


BIG = b"%PDF-1.4\n" + random.Random(2).randbytes(PART + 1000)  # over one part: streamed, then tagged


def test_a_crash_before_the_completeness_tag_uploads_again(server, source, store, monkeypatch):
    url = server.file("/a.pdf", BIG)
    real_mark = store.mark_complete

    def crash(*args, **kwargs):
        raise StorageUnavailable("killed between upload and tag")

    monkeypatch.setattr(store, "mark_complete", crash)
    with pytest.raises(StorageUnavailable):
        store_attachment(source, store, UNIT, DOSSIER, attachment(url), part_size=PART)
    key = object_key(UNIT, DOSSIER, attachment(url))
    assert exists(store.client, store.bucket, key) and store.find_complete(key) is None

    monkeypatch.setattr(store, "mark_complete", real_mark)
    stored = store_attachment(source, store, UNIT, DOSSIER, attachment(url), part_size=PART)
    assert store.find_complete(key).sha256 == stored.sha256 == hashlib.sha256(BIG).hexdigest()
    assert server.hits["/a.pdf"] == 2


def test_a_small_file_is_written_and_tagged_complete_in_one_request(server, source, store, monkeypatch):
    monkeypatch.setattr(store, "mark_complete", lambda *a, **k: pytest.fail("a small file needs no second request"))
    monkeypatch.setattr(store, "stat_size", lambda *a, **k: pytest.fail("a small file needs no second request"))
    stored = store_attachment(source, store, UNIT, DOSSIER, attachment(server.file("/s.pdf", PDF)), part_size=PART)
    assert store.find_complete(stored.object_key).sha256 == stored.sha256 == hashlib.sha256(PDF).hexdigest()


def test_a_source_gone_after_storing_keeps_the_stored_copy(server, source, store):
    url = server.file("/a.pdf", PDF)
    first = store_attachment(source, store, UNIT, DOSSIER, attachment(url), part_size=PART)
    server.status("/a.pdf", 404)
    again = store_attachment(source, store, UNIT, DOSSIER, attachment(url), part_size=PART)
    assert again.model_dump(exclude={"stored_at"}) == first.model_dump(exclude={"stored_at"})
    with pytest.raises(FileNotFound):  # never stored: the 404 stands
        store_attachment(source, store, UNIT, DOSSIER, attachment(url, ten_file="other.pdf"), part_size=PART)


def test_two_same_named_files_of_one_dossier_stay_apart(server, source, store):
    one = attachment(server.file("/2020_10_19_1!~!scan.pdf", PDF), ten_file="scan.pdf")
    two = attachment(server.file("/2020_10_19_2!~!scan.pdf", PDF + b"2"), ten_file="scan.pdf")
    a = store_attachment(source, store, UNIT, DOSSIER, one, part_size=PART)
    b = store_attachment(source, store, UNIT, DOSSIER, two, part_size=PART)
    assert a.object_key != b.object_key
    assert store.client.get_object(store.bucket, a.object_key).read() == PDF
    assert store.client.get_object(store.bucket, b.object_key).read() == PDF + b"2"


def test_a_file_whose_bytes_contradict_its_name_is_flagged(server, source, store):
    url = server.file("/ketqua.pdf", b"<!DOCTYPE html><html><body>Loi he thong</body></html>")
    stored = store_attachment(source, store, UNIT, DOSSIER, attachment(url, ten_file="ketqua.pdf"), part_size=PART)
    assert (stored.content_type, stored.content_type_mismatch) == ("text/html", True)
    again = store_attachment(source, store, UNIT, DOSSIER, attachment(url, ten_file="ketqua.pdf"), part_size=PART)
    assert (again.content_type, again.content_type_mismatch) == ("text/html", True)


def test_an_empty_file_is_stored(server, source, store):
    url = server.file("/empty.txt", b"")
    stored = store_attachment(source, store, UNIT, DOSSIER, attachment(url, ten_file="trong.txt"), part_size=PART)
    assert stored.size == 0 and stored.sha256 == hashlib.sha256(b"").hexdigest()


def test_a_body_without_length_is_stored_in_parts(server, source, store):
    block = random.Random(2).randbytes(MiB)
    url = server.stream("/chunked.bin", lambda: (block for _ in range(12)), length=None)
    stored = store_attachment(source, store, UNIT, DOSSIER, attachment(url, ten_file="ban ve.bin"), part_size=PART)
    assert stored.size == 12 * MiB
    assert stored.sha256 == hashlib.sha256(block * 12).hexdigest()
    assert store.client.stat_object(store.bucket, stored.object_key).size == 12 * MiB


# -- failures leave nothing behind ----------------------------------------------------------------------


@pytest.mark.parametrize("length", [12 * MiB, None], ids=["content-length", "chunked"])
def test_a_truncated_source_leaves_no_object_and_no_upload(server, source, store, length, monkeypatch):
    block = b"t" * MiB

    def serve(h):
        h.start_body(length)
        for _ in range(7):  # 7 MiB of 12: the first 5 MiB part is already uploaded when it breaks
            h.write_chunk(block) if length is None else h.wfile.write(block)
        h.close_connection = True  # a clean close, so every byte sent arrives before the end

    url = server.route("/truncated.pdf", serve)
    item = attachment(url)
    key = object_key(UNIT, DOSSIER, item)
    aborted = []
    real_abort = store.client._abort_multipart_upload
    monkeypatch.setattr(store.client, "_abort_multipart_upload", lambda *a: aborted.append(a[1]) or real_abort(*a))
    with pytest.raises(TruncatedBody):
        store_attachment(source, store, UNIT, DOSSIER, item, part_size=PART)
    assert aborted == [key]  # minio had started the multipart upload, and aborted it
    assert store.find_complete(key) is None
    assert not exists(store.client, store.bucket, key)
    assert uploads(store.client, store.bucket) == []


def test_a_file_over_the_limit_leaves_nothing(server, store):
    small = FileSource(frozenset({"127.0.0.1"}), max_bytes=6 * MiB, connect_timeout=2.0, read_timeout=5.0)
    block = b"x" * MiB
    url = server.stream("/huge.bin", lambda: (block for _ in range(20)), length=None)
    with pytest.raises(FileTooLarge):
        store_attachment(small, store, UNIT, DOSSIER, attachment(url), part_size=PART)
    assert not exists(store.client, store.bucket, object_key(UNIT, DOSSIER, attachment(url)))
    assert uploads(store.client, store.bucket) == []


def test_a_large_file_streams_with_bounded_memory(server, source, store):
    size = 64 * MiB
    block = random.Random(3).randbytes(MiB)
    url = server.stream("/big.pdf", lambda: (block for _ in range(size // MiB)), length=size)
    expected = hashlib.sha256()
    for _ in range(size // MiB):
        expected.update(block)

    tracemalloc.start()
    try:
        stored = store_attachment(source, store, UNIT, DOSSIER, attachment(url, ten_file="lon.bin"), part_size=PART)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    assert stored.size == size and stored.sha256 == expected.hexdigest()
    # minio holds the part it uploads while the next one is assembled: a few parts, never the file.
    print(f"peak traced memory while storing {size // MiB} MiB: {peak / MiB:.1f} MiB")
    assert peak < 4 * PART + 4 * MiB, f"peak {peak / MiB:.1f} MiB"


# -- the store itself -----------------------------------------------------------------------------------


def test_abort_stale_uploads_cleans_an_orphaned_upload(store):
    client = store.client
    upload_id = client._create_multipart_upload(store.bucket, "unit/dossier/doc/orphan.pdf", {})
    client._upload_part(store.bucket, "unit/dossier/doc/orphan.pdf", b"p" * PART, None, upload_id, 1)
    assert store.abort_stale_uploads(timedelta(hours=1)) == 0  # too young: could be another worker's
    assert len(uploads(client, store.bucket)) == 1
    assert store.abort_stale_uploads(timedelta(0)) == 1
    assert uploads(client, store.bucket) == []


def test_ensure_bucket_creates_it_with_the_lifecycle_rule(s3_server):
    client = s3_server.client()
    name = f"test-new-{random.Random().getrandbits(40):x}"
    store = ObjectStore(client, name)
    store.ensure_bucket()
    store.ensure_bucket()  # twice is harmless
    assert client.bucket_exists(name)
    rules = client.get_bucket_lifecycle(name).rules
    assert [rule.rule_id for rule in rules] == [LIFECYCLE_RULE_ID]
    assert rules[0].abort_incomplete_multipart_upload.days_after_initiation == 1


def test_ensure_bucket_tolerates_a_server_without_lifecycle(s3_server, bucket, caplog):
    client = s3_server.client()

    def refuse(*args, **kwargs):
        raise S3Error(None, "NotImplemented", "lifecycle is not supported", f"/{bucket}", "r", "h")

    client.set_bucket_lifecycle = refuse
    with caplog.at_level(logging.WARNING, logger="shared.storage"):
        ObjectStore(client, bucket).ensure_bucket()
    assert "NotImplemented" in caplog.text


def test_an_unreachable_store_is_transient():
    settings = load_settings(s3_endpoint=f"127.0.0.1:{free_port()}", connect_timeout=0.5)
    with pytest.raises(StorageUnavailable, match="object store failed"):
        ObjectStore.from_settings(settings).find_complete("a/b/c/d")
