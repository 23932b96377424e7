"""The web application without a browser, against a real PostgreSQL and S3: sessions, roles, units,
CSRF, the log-in throttle, search folding, safe file serving and `dongbo users`.

Rows are written directly (not by the pipeline) so each rule is checked on exactly the data it needs;
tests/test_web_browser.py runs the whole thing against an archive the pipeline filled.
"""

from __future__ import annotations

import hashlib
import io
import re
from datetime import UTC, date, datetime

import pytest
import sqlalchemy
from fastapi.testclient import TestClient

from services.web import accounts
from services.web.app import create_app
from services.web.files import content_disposition, served_type
from services.web.folding import fold
from shared.db.engine import make_engine, upgrade
from shared.db.models import HoSo, SyncState, TaiLieu
from shared.settings import load_settings

PASSWORD = "mat-khau-dai-1"
FILES = {
    "a.pdf": (b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n", "application/pdf"),
    "trang.html": (b"<html><script>alert(1)</script></html>", "text/html"),
}


def seed(engine, store, bucket_client, bucket: str) -> dict[str, int]:
    """Two units, three dossiers, two files on the first."""
    now = datetime.now(UTC)
    ids = {}
    with engine.begin() as connection:
        for mahoso, unit, name in (("000.00.17.H55-240501-0001", "U1", "Nguyễn Văn An"),
                                   ("000.00.17.H55-240501-0002", "U1", "Trần Thị Bình"),
                                   ("000.00.12.H55-240502-0001", "U2", "Công ty Đông Á")):
            ids[mahoso] = connection.execute(sqlalchemy.insert(HoSo.__table__).values(
                mahoso=mahoso, madonvi=unit, tentochuccanhan=name, ngaynhan=date(2024, 5, 1), mathutuc="TT1",
                tenthutuc="Cấp giấy phép", file_count=2, state="synced", fetched_at=now, indexed_at=now,
                synced_at=now).returning(HoSo.__table__.c.id)).scalar()
            connection.execute(sqlalchemy.insert(SyncState.__table__).values(
                mahoso=mahoso, madonvi=unit, status="synced", first_seen_at=now, updated_at=now, synced_at=now))
        for index, (name, (data, kind)) in enumerate(FILES.items()):
            for mahoso in ("000.00.17.H55-240501-0001", "000.00.12.H55-240502-0001"):
                key = f"{mahoso}/{index}/{name}"
                bucket_client.put_object(bucket, key, io.BytesIO(data), len(data), content_type=kind)
                ids[f"{mahoso}:{name}"] = connection.execute(sqlalchemy.insert(TaiLieu.__table__).values(
                    ho_so_id=ids[mahoso], mahoso=mahoso, matailieu=f"T{index}", tentailieu="Đơn đề nghị",
                    ten_file=f"Đơn đề nghị {name}", url_file=f"http://x/{key}", object_key=key, size=len(data),
                    sha256=hashlib.sha256(data).hexdigest(), content_type=kind, content_type_mismatch=False,
                    stored_at=now).returning(TaiLieu.__table__.c.id)).scalar()
    return ids


@pytest.fixture
def web(pg_url, s3_server, bucket, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    upgrade(pg_url)
    settings = load_settings(database_url=pg_url, s3_endpoint=s3_server.endpoint, s3_access_key=s3_server.access_key,
                             s3_secret_key=s3_server.secret_key, s3_bucket=bucket, units=["U1", "U2"])
    engine = make_engine(pg_url)
    app = create_app(settings, engine=engine)
    ids = seed(engine, app.state.store, s3_server.client(), bucket)
    accounts.add_user(engine, "op", "operator", [], PASSWORD)
    accounts.add_user(engine, "xem", "viewer", ["U1"], PASSWORD)
    yield app, engine, ids
    engine.dispose()


def login(client: TestClient, username: str, password: str = PASSWORD):
    form = client.get("/login").text
    token = re.search(r'name="csrf_token" value="([^"]+)"', form).group(1)
    return client.post("/login", data={"username": username, "password": password, "csrf_token": token},
                       follow_redirects=False)


def csrf_of(html: str) -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)


def test_fold():
    assert fold("Nguyễn Văn An") == "nguyen van an"
    assert fold("ĐỖ  THỊ ỨNG") == "do thi ung"


def test_every_page_needs_a_session_and_headers_are_set(web):
    app, _, ids = web
    client = TestClient(app)
    for path in ("/search", "/health", f"/dossier/{ids['000.00.17.H55-240501-0001']}", "/dead-letters",
                 "/access-log", f"/file/{ids['000.00.17.H55-240501-0001:a.pdf']}"):
        response = client.get(path, follow_redirects=False)
        assert response.status_code == 303 and response.headers["location"].startswith("/login?next="), path
    page = client.get("/login")
    csp = page.headers["content-security-policy"]
    assert "script-src 'none'" in csp and "frame-ancestors 'none'" in csp
    assert page.headers["x-content-type-options"] == "nosniff"
    assert page.headers["referrer-policy"] == "same-origin"


def test_login_sets_a_safe_cookie_and_refuses_without_csrf(web):
    app, engine, _ = web
    client = TestClient(app)
    client.get("/login")
    refused = client.post("/login", data={"username": "op", "password": PASSWORD}, follow_redirects=False)
    assert refused.status_code == 403
    ok = login(client, "op")
    assert ok.status_code == 303 and ok.headers["location"] == "/search"
    cookie = ok.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=lax" in cookie.replace("Lax", "lax") and "Secure" not in cookie
    behind_proxy = TestClient(app, base_url="https://archive.example")
    assert "Secure" in login(behind_proxy, "op").headers["set-cookie"]
    # A state-changing form without its token is refused.
    assert client.post("/logout", data={}, follow_redirects=False).status_code == 403
    token = csrf_of(client.get("/search").text)
    assert client.post("/logout", data={"csrf_token": token}, follow_redirects=False).status_code == 303
    assert client.get("/search", follow_redirects=False).status_code == 303
    with engine.connect() as connection:
        actions = [r[0] for r in connection.execute(sqlalchemy.text("SELECT action FROM access_log ORDER BY id"))]
    assert actions.count("login") == 2 and "logout" in actions


def test_repeated_failed_logins_slow_down(web):
    app, engine, _ = web
    client = TestClient(app)
    for _ in range(3):
        assert login(client, "op", "wrong-password").status_code == 401
    throttled = login(client, "op")  # even the right password waits now
    assert throttled.status_code == 429 and int(throttled.headers["retry-after"]) >= 1
    other_user = TestClient(app)
    assert login(other_user, "xem").status_code == 303  # another name is not slowed by op's failures
    with engine.connect() as connection:
        failed = connection.execute(sqlalchemy.text(
            "SELECT count(*) FROM access_log WHERE action = 'login-failed' AND username = 'op'")).scalar()
    assert failed == 3


def test_search_folds_diacritics_and_prefixes(web):
    app, _, _ = web
    client = TestClient(app)
    login(client, "op")
    for q in ("nguyen van an", "Nguyễn Văn An", "NGUYEN", "000.00.17.H55-240501-0001", "000.00.17"):
        assert "000.00.17.H55-240501-0001" in client.get("/search", params={"q": q}).text, q
    assert "000.00.12.H55-240502-0001" in client.get("/search", params={"q": "dong a"}).text
    page = client.get("/search", params={"q": "binh", "unit": "U2"}).text
    assert "240501-0002" not in page
    assert "240501-0002" in client.get("/search", params={"from": "2024-05-01", "to": "2024-05-01"}).text


def test_units_roles_and_file_safety(web):
    app, engine, ids = web
    viewer = TestClient(app)
    login(viewer, "xem")
    assert viewer.get("/dead-letters").status_code == 403
    assert viewer.get("/access-log").status_code == 403
    mine, theirs = ids["000.00.17.H55-240501-0001"], ids["000.00.12.H55-240502-0001"]
    assert viewer.get(f"/dossier/{mine}").status_code == 200
    assert viewer.get(f"/dossier/{theirs}").status_code == 404
    assert viewer.get(f"/file/{ids['000.00.12.H55-240502-0001:a.pdf']}").status_code == 404
    assert viewer.get("/dossier/999999").status_code == 404
    assert "000.00.12" not in viewer.get("/search").text

    pdf = viewer.get(f"/file/{ids['000.00.17.H55-240501-0001:a.pdf']}/preview")
    assert pdf.status_code == 200 and pdf.headers["content-type"] == "application/pdf"
    assert pdf.headers["content-disposition"].startswith("inline;")
    html = viewer.get(f"/file/{ids['000.00.17.H55-240501-0001:trang.html']}/preview")
    assert html.headers["content-type"] == "application/octet-stream"
    assert html.headers["content-disposition"].startswith("attachment;")
    assert "sandbox" in html.headers["content-security-policy"]
    assert html.content == FILES["trang.html"][0]
    download = viewer.get(f"/file/{ids['000.00.17.H55-240501-0001:a.pdf']}")
    assert "filename*=UTF-8''%C4%90%C6%A1n%20%C4%91%E1%BB%81%20ngh%E1%BB%8B%20a.pdf" in \
        download.headers["content-disposition"]
    assert hashlib.sha256(download.content).hexdigest() == hashlib.sha256(FILES["a.pdf"][0]).hexdigest()
    with engine.connect() as connection:
        actions = {r[0] for r in connection.execute(sqlalchemy.text(
            "SELECT action FROM access_log WHERE username = 'xem'"))}
    assert {"login", "view", "preview", "download"} <= actions


def test_dashboard_counts(web):
    app, _, _ = web
    client = TestClient(app)
    login(client, "op")
    page = client.get("/health").text
    assert re.search(r'data-unit="U1">.*?class="num today">2<', page, re.S)
    assert re.search(r'data-unit="U2">.*?class="num all">1<', page, re.S)
    assert "<svg" in page and "<script" not in page


def test_helpers():
    assert served_type("text/html; charset=utf-8") == "application/octet-stream"
    assert served_type("image/svg+xml") == "application/octet-stream"
    assert served_type("application/pdf") == "application/pdf"
    assert content_disposition("attachment", "Tờ khai\r\n.pdf") == \
        "attachment; filename=\"T_ khai  .pdf\"; filename*=UTF-8''T%E1%BB%9D%20khai%20%20.pdf"


def test_users_command(pg_url, monkeypatch, tmp_path, capsys):
    from cli.main import main

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DONGBO_DATABASE_URL", pg_url)
    upgrade(pg_url)
    monkeypatch.setattr("sys.stdin", io.StringIO(PASSWORD + "\n"))
    assert main(["users", "add", "lan", "--role", "viewer", "--units", "U1,U2"]) == 0
    assert main(["users", "list"]) == 0
    assert "U1,U2" in capsys.readouterr().out
    monkeypatch.setattr("sys.stdin", io.StringIO("short\n"))
    assert main(["users", "passwd", "lan"]) == 1
    assert main(["users", "disable", "lan"]) == 0
    engine = make_engine(pg_url)
    assert accounts.check_password(engine, "lan", PASSWORD) is None  # disabled
    assert accounts.find_user(engine, "lan").disabled
    engine.dispose()


def test_the_web_migration_goes_down_and_up_again(pg_url):
    from alembic import command

    from shared.db.engine import HEAD_REVISION, alembic_config, current_revision

    upgrade(pg_url)
    command.downgrade(alembic_config(pg_url), "0003")  # the revision before the web's (0004_web.py)
    engine = make_engine(pg_url)
    assert current_revision(engine) == "0003"
    assert not sqlalchemy.inspect(engine).has_table("web_user")
    upgrade(pg_url)
    assert current_revision(engine) == HEAD_REVISION
    indexes = {i["name"] for i in sqlalchemy.inspect(engine).get_indexes("ho_so")}
    assert {"ix_ho_so_ten_folded_trgm", "ix_ho_so_mahoso_pattern", "ix_ho_so_ngaynhan_desc"} <= indexes
    engine.dispose()
