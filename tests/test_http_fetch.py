"""The file fetcher against a real HTTP server on loopback: host rules, redirects, statuses, broken bodies."""

from __future__ import annotations

import gzip
import socket
import time

import pytest

from harness.fileserver import FileServer
from harness.services import free_port
from services.downloader.http_fetch import FileSource
from shared.errors import (
    FileNotFound,
    FileRefused,
    FileSourceUnavailable,
    FileTooLarge,
    ForbiddenHost,
    PermanentError,
    RedirectLoop,
    TransientError,
    TruncatedBody,
)

LIMIT = 256 * 1024
PDF = b"%PDF-1.4\n" + bytes(range(256)) * 100


@pytest.fixture
def server():
    with FileServer() as running:
        yield running


def make_source(hosts=("127.0.0.1",), **options) -> FileSource:
    defaults = dict(max_bytes=LIMIT, connect_timeout=2.0, read_timeout=0.5)
    return FileSource(frozenset(hosts), **{**defaults, **options})


def fetch(source: FileSource, url: str) -> bytes:
    with source.open(url) as response:
        return b"".join(response.iter_chunks(8192))


# -- normal files -----------------------------------------------------------------------------------


def test_fetches_a_file_with_its_headers(server):
    url = server.file("/a.pdf", PDF, ETag='"v1"')
    with make_source().open(url) as response:
        assert response.content_length == len(PDF)
        assert response.etag == '"v1"'
        assert b"".join(response.iter_chunks()) == PDF
        assert response.bytes_read == len(PDF)


def test_the_documents_url_shape_is_requested_exactly(server):
    # url_file holds `!~!` and raw Vietnamese names with spaces; requests must quote them once, and
    # leave an already-encoded URL alone.
    path = "/thainguyen/general/public/attach-file/000.00.17.H55/2020/10/19/2020_10_19_031048885!~!Giấy tờ khác.pdf"
    server.file(path, PDF)
    wire = ("/thainguyen/general/public/attach-file/000.00.17.H55/2020/10/19/"
            "2020_10_19_031048885!~!Gi%E1%BA%A5y%20t%E1%BB%9D%20kh%C3%A1c.pdf")
    source = make_source()
    assert fetch(source, server.url(path)) == PDF
    assert fetch(source, server.url(wire)) == PDF
    assert server.requests == [wire, wire]


def test_a_stray_percent_and_a_hash_are_part_of_the_name(server):
    server.file("/100%.pdf", PDF)
    server.file("/so #1.pdf", PDF)
    source = make_source()
    assert fetch(source, server.url("/100%.pdf")) == PDF
    assert fetch(source, server.url("/so #1.pdf")) == PDF
    assert server.requests == ["/100%25.pdf", "/so%20%231.pdf"]


def test_connections_are_reused(server):
    url = server.file("/a.pdf", PDF)
    source = make_source()
    for _ in range(3):
        assert fetch(source, url) == PDF
    assert server.connections == 1


def test_a_compressed_body_is_decoded_and_its_length_unknown(server):
    server.route(
        "/z.txt", lambda h: h.send_bytes(gzip.compress(b"hello " * 1000), headers={"Content-Encoding": "gzip"})
    )
    with make_source().open(server.url("/z.txt")) as response:
        assert response.content_length is None
        assert b"".join(response.iter_chunks()) == b"hello " * 1000


# -- host rules -----------------------------------------------------------------------------------------


def test_a_loopback_host_is_allowed_by_configuration(server):
    url = server.file("/a.pdf", PDF)
    assert fetch(make_source(hosts=("LOCALHOST",)), server.url("/a.pdf", host="localhost")) == PDF
    assert fetch(make_source(hosts=("127.0.0.1",)), url) == PDF


def test_a_host_not_listed_is_refused_without_a_request(server):
    server.file("/a.pdf", PDF)
    with pytest.raises(ForbiddenHost, match="localhost is not in DONGBO_ALLOWED_FILE_HOSTS"):
        make_source(hosts=("127.0.0.1",)).open(server.url("/a.pdf", host="localhost")).__enter__()
    with pytest.raises(ForbiddenHost, match="127.0.0.1"):
        make_source(hosts=("localhost",)).open(server.url("/a.pdf")).__enter__()
    assert server.requests == []


def test_a_listed_port_limits_the_host(server):
    url = server.file("/a.pdf", PDF)
    assert fetch(make_source(hosts=(f"127.0.0.1:{server.port}",)), url) == PDF
    with pytest.raises(ForbiddenHost, match="not on port"):
        make_source(hosts=("127.0.0.1:1",)).check_url(url)


@pytest.mark.parametrize(
    "url",
    [
        "ftp://127.0.0.1/a.pdf",
        "file:///etc/passwd",
        "gopher://127.0.0.1:70/",
        "//127.0.0.1/a.pdf",
        "http:///a.pdf",
        "a.pdf",
    ],
)
def test_only_http_urls_with_a_host(url):
    with pytest.raises(ForbiddenHost):
        make_source().check_url(url)


def test_credentials_in_a_url_are_refused_and_never_repeated(server):
    url = server.file("/a.pdf", PDF).replace("http://", "http://admin:s3cret@")
    with pytest.raises(ForbiddenHost) as caught:
        make_source().check_url(url)
    assert "s3cret" not in str(caught.value) and "127.0.0.1" in str(caught.value)


def test_a_url_two_parsers_read_differently_is_refused(server):
    with pytest.raises(ForbiddenHost, match="ambiguous"):
        make_source(hosts=("127.0.0.1", "evil.example")).check_url(
            f"http://127.0.0.1:{server.port}\\@evil.example/a.pdf"
        )


def test_hosts_compare_case_insensitively_and_as_idna():
    source = make_source(hosts=("Bücher.Example.", "[::1]"), resolver=lambda host, port: ["10.0.0.5"])
    assert source.check_url("http://BÜCHER.example/Tờ khai.pdf") == "http://xn--bcher-kva.example/T%E1%BB%9D%20khai.pdf"
    assert source.check_url("http://[0:0:0:0:0:0:0:1]:8080/a") == "http://[0:0:0:0:0:0:0:1]:8080/a"


def test_the_metadata_address_is_refused():
    with pytest.raises(ForbiddenHost, match="169.254.169.254"):
        make_source().check_url("http://169.254.169.254/latest/meta-data/")


def test_a_listed_name_resolving_to_link_local_is_refused():
    for address in ["169.254.169.254", "fe80::1%eth0", "::ffff:169.254.169.254"]:
        source = make_source(hosts=("files.example",), resolver=lambda host, port, a=address: ["10.0.0.1", a])
        with pytest.raises(ForbiddenHost, match="link-local"):
            source.check_url("http://files.example/a.pdf")


def test_a_listed_link_local_literal_is_trusted():
    assert make_source(hosts=("169.254.169.254",)).check_url("http://169.254.169.254/a") == "http://169.254.169.254/a"
    source = make_source(hosts=("files.example", "169.254.10.10"), resolver=lambda host, port: ["169.254.10.10"])
    assert source.check_url("http://files.example/a") == "http://files.example/a"


def test_a_name_that_does_not_resolve_is_transient():
    def fail(host, port):
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    with pytest.raises(FileSourceUnavailable, match="does not resolve"):
        make_source(hosts=("files.example",), resolver=fail).check_url("http://files.example/a")


# -- redirects ------------------------------------------------------------------------------------------


def test_follows_a_redirect_to_an_allowed_host(server):
    server.file("/real.pdf", PDF)
    server.redirect("/moved", "/real.pdf", status=301)
    server.redirect("/elsewhere", server.url("/moved", host="localhost"), status=307)
    source = make_source(hosts=("127.0.0.1", "localhost"))
    with source.open(server.url("/elsewhere")) as response:
        assert response.url == server.url("/real.pdf", host="localhost")
        assert b"".join(response.iter_chunks()) == PDF


@pytest.mark.parametrize("target", ["http://localhost:{port}/real.pdf", "http://169.254.169.254/latest/meta-data/"])
def test_a_redirect_to_a_forbidden_host_is_refused(server, target):
    server.file("/real.pdf", PDF)
    url = server.redirect("/go", target.format(port=server.port))
    with pytest.raises(ForbiddenHost):
        make_source().open(url).__enter__()
    assert server.hits["/real.pdf"] == 0


def test_a_redirect_loop_is_refused(server):
    server.redirect("/a", "/b")
    url = server.redirect("/b", "/a")
    with pytest.raises(RedirectLoop, match="circle"):
        make_source().open(url).__enter__()


def test_too_many_redirects_are_refused(server):
    for hop in range(8):
        server.redirect(f"/hop{hop}", f"/hop{hop + 1}")
    server.file("/hop8", PDF)
    with pytest.raises(RedirectLoop, match="more than 5"):
        make_source().open(server.url("/hop0")).__enter__()
    assert fetch(make_source(max_redirects=8), server.url("/hop0")) == PDF


# -- statuses -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "status, error",
    [
        (404, FileNotFound),
        (410, FileNotFound),
        (400, FileRefused),
        (401, FileRefused),
        (403, FileRefused),
        (500, FileSourceUnavailable),
        (502, FileSourceUnavailable),
        (503, FileSourceUnavailable),
        (429, FileSourceUnavailable),
        (408, FileSourceUnavailable),
    ],
)
def test_statuses_are_classified(server, status, error):
    url = server.status(f"/s{status}", status)
    with pytest.raises(error, match=f"127.0.0.1 answered {status}") as caught:
        make_source().open(url).__enter__()
    assert isinstance(caught.value, PermanentError) == (status < 500 and status not in (408, 429))


def test_an_unreachable_host_is_transient():
    with pytest.raises(FileSourceUnavailable, match="could not be reached") as caught:
        make_source().open(f"http://127.0.0.1:{free_port()}/a.pdf").__enter__()
    assert isinstance(caught.value, TransientError)


# -- bodies -------------------------------------------------------------------------------------------


def test_content_length_over_the_limit_is_refused_before_reading(server):
    url = server.file("/big.pdf", b"x" * (LIMIT + 1))
    with pytest.raises(FileTooLarge, match=str(LIMIT + 1)):
        make_source().open(url).__enter__()


def test_a_chunked_body_over_the_limit_stops_while_streaming(server):
    url = server.stream("/endless", lambda: (b"x" * 65536 for _ in range(100)), length=None)
    with make_source().open(url) as response:
        assert response.content_length is None
        with pytest.raises(FileTooLarge, match="while streaming"):
            for _ in response.iter_chunks(65536):
                pass
        assert response.bytes_read <= LIMIT + 65536


def test_a_body_shorter_than_its_content_length_is_truncated(server):
    url = server.short("/short.pdf", declared=len(PDF), sent=PDF[:1000])
    with make_source().open(url) as response, pytest.raises(TruncatedBody) as caught:
        b"".join(response.iter_chunks())
    assert "127.0.0.1" in str(caught.value)


def test_a_connection_reset_mid_body_is_truncated(server):
    url = server.reset_mid_body("/reset.pdf", declared=200_000, sent=PDF[:5000])
    with make_source().open(url) as response, pytest.raises(TruncatedBody, match="broke off"):
        b"".join(response.iter_chunks())


def test_a_chunked_body_broken_mid_way_is_truncated(server):
    def serve(h):
        h.start_body(None)
        h.write_chunk(b"x" * 1000)
        h.wfile.write(b"ffff\r\n" + b"y" * 10)  # a chunk announced, never finished
        h.reset()

    url = server.route("/chunks", serve)
    with make_source().open(url) as response, pytest.raises(TruncatedBody):
        b"".join(response.iter_chunks())


def test_a_stalled_body_times_out(server):
    url = server.drip("/slow.pdf", [b"%PDF-1.4\n", b"more", b"end"], delay=3.0)
    started = time.monotonic()
    with make_source(read_timeout=0.5).open(url) as response, pytest.raises(TruncatedBody, match="stalled"):
        b"".join(response.iter_chunks())
    assert time.monotonic() - started < 2.5
