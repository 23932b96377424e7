"""Hostile file hosts and a hostile one-stop API, each a real HTTP server on loopback.

Every case asserts the exact outcome: which error (and so which dead-letter reason), how long it took, and
where memory matters, the peak resident memory of a separate process that did the transfer.
"""

from __future__ import annotations

import hashlib
import json
import socket
import subprocess
import sys
import textwrap
import threading
import time
import tracemalloc
import unicodedata
import uuid
from ipaddress import ip_network

import pika
import pytest

from harness.fileserver import FileServer, Handler, gzip_bomb
from harness.services import ROOT, wait_for
from services.downloader import http_fetch
from services.downloader.handler import DownloadHandler
from services.downloader.http_fetch import FileSource
from services.downloader.service import Downloader
from services.downloader.transfer import store_attachment
from shared.broker.connection import connect
from shared.broker.consumer import Consumer, one_at_a_time
from shared.broker.outcome import ATTEMPTS_HEADER, REASON_HEADER
from shared.broker.publisher import Publisher
from shared.broker.topology import DOWNLOAD, INDEX, Topology
from shared.db.engine import make_engine, upgrade
from shared.errors import (
    FileRefused,
    FileTooLarge,
    FileTooSlow,
    ForbiddenHost,
    OneStopRefused,
    OneStopUnavailable,
    PermanentError,
    ResponseTooLarge,
    TransientError,
    reason_of,
)
from shared.messages import DossierFetched
from shared.onestop.models import Attachment, Dossier
from shared.onestop.transport import Transport
from shared.storage import ObjectStore

MiB = 1024**2
PDF = b"%PDF-1.4\n" + bytes(range(256)) * 400
BOMB = gzip_bomb(1024 * MiB)  # ~1 MB on the wire, 1 GiB decoded
# A process doing one of these transfers may grow by at most this much over its resting size.
MEMORY_BUDGET = 40 * MiB


@pytest.fixture
def server():
    with FileServer() as running:
        yield running


def make_source(hosts=("127.0.0.1",), **options) -> FileSource:
    defaults = dict(max_bytes=8 * MiB, connect_timeout=2.0, read_timeout=2.0)
    return FileSource(frozenset(hosts), **{**defaults, **options})


def fetch(source: FileSource, url: str) -> bytes:
    with source.open(url) as response:
        return b"".join(response.iter_chunks())


def send_bomb(h: Handler, status: int = 200, **headers: str) -> None:
    h.send_bytes(BOMB, status=status, content_type="application/pdf",
                 headers={"Content-Encoding": "gzip", **headers})


# -- peak memory, measured in a process of its own ------------------------------------------------------

PROBE = textwrap.dedent("""
    import json, sys

    def kib(field):
        for line in open("/proc/self/status"):
            if line.startswith(field + ":"):
                return int(line.split()[1])

    from services.downloader.http_fetch import FileSource
    from shared.errors import reason_of
    from shared.onestop.transport import Transport

    mode, url, limit = sys.argv[1], sys.argv[2], int(sys.argv[3])
    resting = kib("VmRSS")
    outcome, size = "ok", 0
    try:
        if mode == "file":
            source = FileSource(frozenset({"127.0.0.1"}), max_bytes=limit, connect_timeout=2, read_timeout=5)
            with source.open(url) as response:
                for chunk in response.iter_chunks():
                    size += len(chunk)
        else:
            transport = Transport(url, (2.0, 5.0), True)
            transport.post_json("login", {"username": "u"}, what="login")
    except Exception as exc:
        outcome = reason_of(exc)
    print(json.dumps({"outcome": outcome, "size": size, "resting_kib": resting, "peak_kib": kib("VmHWM")}))
""")


def probe(mode: str, url: str, limit: int = 8 * MiB) -> dict:
    """Runs one transfer in a fresh interpreter; its outcome and peak RSS (VmHWM) against its resting RSS."""
    done = subprocess.run([sys.executable, "-c", PROBE, mode, url, str(limit)], cwd=ROOT, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    result["growth"] = (result["peak_kib"] - result["resting_kib"]) * 1024
    print(f"{mode} {url}: {result}")  # shown with -s: the figures the report quotes
    return result


# -- 1. redirects: never read a redirect's body ---------------------------------------------------------


def test_a_redirect_with_a_gzip_bomb_body_is_followed_without_reading_it(server):
    server.file("/real.pdf", PDF)
    url = server.route("/moved", lambda h: send_bomb(h, status=302, Location="/real.pdf"))
    result = probe("file", url)
    assert result["outcome"] == "ok" and result["size"] == len(PDF)
    assert result["growth"] < MEMORY_BUDGET


def test_a_redirect_body_that_never_ends_does_not_hold_the_transfer(server):
    def endless_redirect(h: Handler) -> None:
        h.send_response(302)
        h.send_header("Location", "/real.pdf")
        h.send_header("Content-Length", str(10 * 1024**3))
        h.end_headers()
        for _ in range(100):
            h.wfile.write(b"x" * 1024)
            h.wfile.flush()
            h.pause(0.1)

    server.file("/real.pdf", PDF)
    url = server.route("/moved", endless_redirect)
    started = time.monotonic()
    assert fetch(make_source(), url) == PDF
    assert time.monotonic() - started < 1.0


def test_every_hop_is_checked_against_the_allowed_hosts(server):
    server.file("/real.pdf", PDF)
    server.redirect("/hop2", server.url("/real.pdf", host="localhost"))
    url = server.redirect("/hop1", "/hop2")
    with pytest.raises(ForbiddenHost, match="localhost is not in DONGBO_ALLOWED_FILE_HOSTS"):
        fetch(make_source(), url)
    assert server.hits["/real.pdf"] == 0 and server.hits["/hop2"] == 1


def test_the_one_stop_api_answering_3xx_is_refused_unread(server):
    server.route("/api/login", lambda h: send_bomb(h, status=302, Location="http://elsewhere.example/login"))
    transport = Transport(server.url("/api/"), (2.0, 5.0), True)
    tracemalloc.start()
    try:
        with pytest.raises(OneStopRefused, match="HTTP 302 to http://elsewhere.example/login") as caught:
            transport.post_json("login", {"username": "u"}, what="login")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert caught.value.status == 302 and isinstance(caught.value, PermanentError)
    assert peak < 4 * MiB, peak
    assert len(server.posted) == 1  # refused, not followed


def test_the_one_stop_api_3xx_bomb_costs_no_memory(server):
    server.route("/api/login", lambda h: send_bomb(h, status=301, Location="/api/login2"))
    result = probe("onestop", server.url("/api/"))
    assert result["outcome"] == "onestop-refused"
    assert result["growth"] < MEMORY_BUDGET


def test_a_one_stop_error_answer_with_retry_after_and_a_bomb_is_read_bounded(server):
    server.route("/api/login", lambda h: send_bomb(h, status=503, **{"Retry-After": "7"}))
    transport = Transport(server.url("/api/"), (2.0, 5.0), True)
    tracemalloc.start()
    try:
        with pytest.raises(OneStopUnavailable, match="HTTP 503") as caught:
            transport.post_json("login", {"username": "u"}, what="login")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert caught.value.retry_after == 7.0
    assert peak < 4 * MiB, peak


def test_a_one_stop_answer_that_inflates_past_its_limit_is_refused(server):
    server.route("/api/login", lambda h: send_bomb(h))
    result = probe("onestop", server.url("/api/"))
    assert result["outcome"] == "response-too-large"  # the 16 MiB answer limit counts decoded bytes
    assert result["growth"] < MEMORY_BUDGET + 32 * MiB  # what is read up to the limit is kept: it is JSON
    with pytest.raises(ResponseTooLarge):
        Transport(server.url("/api/"), (2.0, 5.0), True).post_json("login", {}, what="login")


# -- 2. decompression bombs: the limit counts decoded bytes ---------------------------------------------


def test_a_gzip_bomb_is_refused_as_too_large_in_bounded_memory(server):
    url = server.route("/bomb.pdf", send_bomb)
    result = probe("file", url, limit=8 * MiB)
    assert result["outcome"] == "file-too-large"
    assert result["size"] <= 8 * MiB
    assert result["growth"] < MEMORY_BUDGET


def test_a_gzip_bomb_message_names_the_limit_and_the_encoding(server):
    url = server.route("/bomb.pdf", send_bomb)
    with pytest.raises(FileTooLarge, match=r"passed 8388608 bytes while streaming \(decoded from gzip\)"):
        fetch(make_source(), url)


def test_a_compressed_file_under_the_limit_is_stored_decoded(server):
    import gzip
    import zlib

    server.route("/z.pdf", lambda h: h.send_bytes(gzip.compress(PDF), headers={"Content-Encoding": "gzip"}))
    server.route("/d.pdf", lambda h: h.send_bytes(zlib.compress(PDF), headers={"Content-Encoding": "deflate"}))
    raw = zlib.compressobj(6, zlib.DEFLATED, -15)
    raw_deflate = raw.compress(PDF) + raw.flush()
    server.route("/r.pdf", lambda h: h.send_bytes(raw_deflate, headers={"Content-Encoding": "deflate"}))
    source = make_source()
    for path in ("/z.pdf", "/d.pdf", "/r.pdf"):
        assert fetch(source, server.url(path)) == PDF


def test_an_encoding_dongbo_does_not_decode_is_refused(server):
    url = server.route("/b.pdf", lambda h: h.send_bytes(b"\x0b\x02\x80", headers={"Content-Encoding": "br"}))
    with pytest.raises(FileRefused, match="does not decode"):
        fetch(make_source(), url)


# -- 3. slow drip: a total deadline per file ------------------------------------------------------------


def test_a_dripping_body_is_abandoned_at_the_deadline(server):
    # A byte every 0.1 s beats any read timeout; only the total deadline stops it.
    url = server.drip("/drip.pdf", [b"%PDF-1.4\n"] + [b"x"] * 200, delay=0.1)
    source = make_source(read_timeout=0.5, deadline=1.0)
    started = time.monotonic()
    with pytest.raises(FileTooSlow, match=r"took longer than 1s \(DONGBO_FILE_DEADLINE\) after \d+ bytes of 209"):
        fetch(source, url)
    elapsed = time.monotonic() - started
    assert 0.9 < elapsed < 1.6, elapsed
    assert reason_of(FileTooSlow("x")) == "file-too-slow" and issubclass(FileTooSlow, TransientError)
    # The connection the deadline cut is not reused: the next file works at once.
    server.file("/ok.pdf", PDF)
    assert fetch(source, server.url("/ok.pdf")) == PDF


def test_dripping_headers_are_abandoned_at_the_deadline(server):
    def slow_headers(h: Handler) -> None:
        h.wfile.write(b"HTTP/1.1 200 OK\r\n")
        for _ in range(100):
            h.wfile.write(b"X-Slow: 1\r\n")
            h.wfile.flush()
            h.pause(0.1)
        h.close_connection = True

    url = server.route("/slow-headers", slow_headers)
    started = time.monotonic()
    with pytest.raises(FileTooSlow, match="before its body began"):
        fetch(make_source(read_timeout=0.5, deadline=0.8), url)
    assert time.monotonic() - started < 1.5


def test_a_slow_redirect_chain_counts_against_one_deadline(server):
    def slow_redirect(target: str):
        def serve(h: Handler) -> None:
            h.pause(0.4)
            h.send_bytes(b"", status=302, headers={"Location": target})
        return serve

    server.file("/end.pdf", PDF)
    for hop in range(4):
        server.route(f"/r{hop}", slow_redirect(f"/r{hop + 1}" if hop < 3 else "/end.pdf"))
    with pytest.raises(FileTooSlow):
        fetch(make_source(read_timeout=1.0, deadline=1.0), server.url("/r0"))


def test_the_default_deadline_fits_the_largest_file_on_a_slow_link():
    deadline = FileSource(frozenset({"x"}), max_bytes=2 * 1024**3).deadline
    assert 2 * 1024**3 / 1_000_000 < deadline < 3600  # 2 GiB at 1 MB/s, before the in-flight timeout
    assert FileSource(frozenset({"x"}), max_bytes=1024, deadline=5.0).deadline == 5.0
    assert FileSource(frozenset({"x"}), max_bytes=1024).deadline == http_fetch.MIN_DEADLINE


def test_one_watchdog_keeps_every_deadline_without_a_thread_per_file():
    from services.downloader import guard

    policy = make_source().policy
    before = threading.active_count()
    # Many short files, each finished long before its deadline: no thread each, and the heap forgets them.
    for _ in range(2000):
        with guard.Transfer(policy, 600.0):
            pass
    assert threading.active_count() <= before + 1  # at most the watchdog itself
    assert len(guard._watchdog._heap) < 200
    # A short deadline set after a long one still expires on time (the watchdog wakes for it).
    long, short = guard.Transfer(policy, 600.0), guard.Transfer(policy, 0.2)
    with long, short:
        wait_for(lambda: short.expired, timeout=3, what="the short deadline to expire")
        assert short.age < 1.5 and not long.expired


def test_health_turns_red_on_a_transfer_held_past_its_deadline(server, monkeypatch):
    class HealthyConsumer:
        def health(self):
            return True, "ok"

    monkeypatch.setattr(http_fetch, "OVERDUE_GRACE", 0.2)
    server.file("/a.pdf", PDF)
    source = make_source(deadline=0.3)
    downloader = Downloader(HealthyConsumer(), source)  # type: ignore[arg-type]
    assert downloader.health() == (True, "ok")
    with source.open(server.url("/a.pdf")):
        # Stuck outside the socket (say, in the upload): the deadline cannot free it, health must say so.
        wait_for(lambda: not downloader.health()[0], timeout=3, what="health to turn red")
        healthy, text = downloader.health()
        assert "past DONGBO_FILE_DEADLINE" in text
    assert downloader.health() == (True, "ok")


@pytest.fixture
def tls_server(tmp_path):
    """An HTTPS file server on loopback with a throwaway self-signed certificate for `localhost`."""
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    made = subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key),
                           "-out", str(cert), "-days", "1", "-subj", "/CN=localhost"], capture_output=True)
    assert made.returncode == 0, f"openssl could not make a certificate: {made.stderr!r}"
    with FileServer(tls=(str(cert), str(key))) as running:
        yield running


@pytest.mark.filterwarnings("ignore::urllib3.exceptions.InsecureRequestWarning")
def test_the_deadline_and_the_address_check_hold_over_tls(tls_server):
    tls_server.file("/a.pdf", PDF)
    tls_server.drip("/drip.pdf", [b"x"] * 100, delay=0.1)
    source = make_source(hosts=("localhost",), verify_tls=False, read_timeout=0.5, deadline=1.0)
    source.policy.metadata_networks = (ip_network("127.0.0.2/32"),)  # the check runs, and lets 127.0.0.1 by
    assert fetch(source, tls_server.url("/a.pdf", host="localhost")) == PDF
    assert fetch(source, tls_server.url("/a.pdf", host="localhost")) == PDF
    assert tls_server.connections == 1  # a TLS connection is reused between files
    started = time.monotonic()
    with pytest.raises(FileTooSlow):
        fetch(source, tls_server.url("/drip.pdf", host="localhost"))
    assert time.monotonic() - started < 1.6
    assert fetch(source, tls_server.url("/a.pdf", host="localhost")) == PDF


# -- 4. a Location that is not UTF-8 --------------------------------------------------------------------


def test_a_location_that_is_not_utf8_is_refused(server):
    # send_header writes latin-1: "\xe9" alone is the byte 0xE9, which no UTF-8 text holds.
    url = server.route("/bad", lambda h: h.send_bytes(b"", status=302, headers={"Location": "/caf\xe9.pdf"}))
    with pytest.raises(FileRefused, match="Location that is not valid UTF-8") as caught:
        fetch(make_source(), url)
    assert reason_of(caught.value) == "file-refused" and isinstance(caught.value, PermanentError)


def test_a_utf8_location_is_followed(server):
    server.file("/Tờ khai.pdf", PDF)
    location = "/Tờ khai.pdf".encode().decode("latin-1")  # the UTF-8 bytes, as http.client hands them over
    url = server.route("/go", lambda h: h.send_bytes(b"", status=302, headers={"Location": location}))
    assert fetch(make_source(), url) == PDF


# -- 5. DNS rebinding: the address checked is the address connected to ----------------------------------


@pytest.fixture
def rebinding_dns(monkeypatch):
    """`files.test` resolves to 127.0.0.1 for a check and to 127.0.0.2 for the connection that follows.

    127.0.0.2 plays the metadata service (the policy's link-local networks are pointed at it), so a
    real socket really connects to the forbidden address: only a check of the peer can catch it.
    """
    real = socket.getaddrinfo
    answers = iter(["127.0.0.1"] + ["127.0.0.2"] * 100)

    def getaddrinfo(host, port, *args, **kwargs):
        if host == "files.test":
            return real(next(answers), port, *args, **kwargs)
        return real(host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)


def test_a_name_rebound_to_a_forbidden_address_is_refused_at_connect(rebinding_dns):
    with FileServer(host="127.0.0.2") as metadata:
        metadata.file("/latest/meta-data/", b"secret credentials")
        source = make_source(hosts=("files.test",))
        source.policy.metadata_networks = (ip_network("127.0.0.2/32"),)
        url = f"http://files.test:{metadata.port}/latest/meta-data/"
        assert source.check_url(url)  # the first answer looks harmless
        with pytest.raises(ForbiddenHost, match="files.test connected to the link-local address 127.0.0.2"):
            fetch(source, url)
        assert metadata.requests == []  # not a byte was sent


def test_the_peer_check_lets_an_ordinary_connection_through(server):
    source = make_source(hosts=("localhost",))
    source.policy.metadata_networks = (ip_network("127.0.0.2/32"),)
    server.file("/a.pdf", PDF)
    assert fetch(source, server.url("/a.pdf", host="localhost")) == PDF


# -- 6. NFC/NFD: two URLs, two files, two objects -------------------------------------------------------


def test_urls_differing_only_in_nfc_and_nfd_store_two_objects(server, s3_server, bucket):
    name = "/Quyết định.pdf"
    nfc, nfd = unicodedata.normalize("NFC", name), unicodedata.normalize("NFD", name)
    first, second = PDF + b"nfc", PDF + b"nfd"
    # The server routes on the decoded path, so the two spellings really are two files.
    server.file(nfc, first)
    server.file(nfd, second)
    store = ObjectStore(s3_server.client(), bucket, part_size=5 * MiB)
    source = make_source()
    stored = [
        store_attachment(source, store, "U1", "HS-1", Attachment(matailieu="M1", url_file=server.url(path),
                                                                  ten_file="Quyết định.pdf"))
        for path in (nfc, nfd)
    ]
    assert stored[0].object_key != stored[1].object_key
    client = s3_server.client()
    for item, data in zip(stored, (first, second), strict=True):
        assert client.get_object(bucket, item.object_key).read() == data
        assert item.sha256 == hashlib.sha256(data).hexdigest()


# -- through the delivery policy: real broker, bucket and database --------------------------------------


def test_hostile_files_are_parked_with_their_reasons_and_good_ones_pass(
    server, rabbit_url, pg_url, s3_server, bucket, queue_prefix
):
    server.file("/good.pdf", PDF)
    server.route("/bomb-redirect", lambda h: send_bomb(h, status=302, Location="/good.pdf"))
    server.route("/bomb.pdf", send_bomb)
    server.drip("/drip.pdf", [b"%PDF-1.4\n"] + [b"x"] * 100, delay=0.1)
    server.route("/bad-location", lambda h: h.send_bytes(b"", status=302, headers={"Location": "/\xff.pdf"}))
    cases = {
        "HS-GOOD": "/bomb-redirect",
        "HS-BOMB": "/bomb.pdf",
        "HS-DRIP": "/drip.pdf",
        "HS-LOCATION": "/bad-location",
    }
    expected = {"HS-BOMB": ("file-too-large", 1), "HS-DRIP": ("file-too-slow", 2),
                "HS-LOCATION": ("file-refused", 1)}

    upgrade(pg_url)
    engine = make_engine(pg_url)
    topology = Topology(queue_prefix, (0.2,))  # one retry: a slow file is tried twice, then parked
    connection = connect(rabbit_url, "test")
    channel = connection.channel()
    topology.declare(channel)
    publisher = Publisher(channel, topology)
    for mahoso, path in cases.items():
        dossier = Dossier.model_validate({"mahoso": mahoso, "madonvi": "U1", "file_dinh_kem": [
            {"matailieu": "M1", "url_file": server.url(path), "ten_file": "a.pdf"}]})
        publisher.publish(topology.queue(DOWNLOAD), DossierFetched.of(dossier))
    connection.close()

    source = make_source(read_timeout=0.5, deadline=0.8)
    store = ObjectStore(s3_server.client(), bucket, part_size=5 * MiB)
    handler = DownloadHandler(source, store, engine, part_size=5 * MiB, max_files=10)
    consumer = Consumer(service=f"downloader-{uuid.uuid4().hex[:6]}", amqp_url=rabbit_url, topology=topology,
                        stage=DOWNLOAD, handle=one_at_a_time(handler), concurrency=2)
    thread = threading.Thread(target=consumer.run, daemon=True)
    thread.start()
    try:
        parked: dict[str, tuple[str, int]] = {}
        passed: list[str] = []

        def drained() -> bool:
            blocking = pika.BlockingConnection(pika.URLParameters(rabbit_url))
            channel = blocking.channel()
            for queue, into in ((topology.dead_letter_queue(DOWNLOAD), "dlq"), (topology.queue(INDEX), "index")):
                while True:
                    method, props, body = channel.basic_get(queue, auto_ack=True)
                    if method is None:
                        break
                    mahoso = json.loads(body)["mahoso"]
                    if into == "dlq":
                        headers = props.headers or {}
                        parked[mahoso] = (headers[REASON_HEADER], headers[ATTEMPTS_HEADER])
                    else:
                        passed.append(mahoso)
            blocking.close()
            return len(parked) + len(passed) == len(cases)

        wait_for(drained, timeout=30, interval=0.3, what="every dossier parked or passed")
    finally:
        consumer.stop()
        thread.join(30)
        source.close()
        engine.dispose()
    assert passed == ["HS-GOOD"]
    assert parked == expected
