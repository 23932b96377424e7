"""The web application in a real browser (Debian's Chromium driven by Playwright) against an archive the
pipeline filled: the simulator, the four services, real RabbitMQ, S3 and PostgreSQL, and `dongbo web` as
its own process. One browser for the module; every page is saved as a screenshot under the test's
output folder, and the search and dossier pages also under docs/img/ for the README.

Before the downloaders start, one fetched dossier is moved from the download queue to its dead-letter
queue (as a downloader would park it); the operator then replays it from the dead-letters page and
watches it arrive. Then the vendor removes a file of a marked dossier: its page shows both versions and the
removed file still downloads byte for byte (but not for a user of another unit).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import unquote

import pika
import pytest
import requests
import sqlalchemy

from harness.pipeline import Pipeline, expected_dossiers, sim_dossiers
from harness.services import ROOT, free_port, wait_for
from services.web import accounts
from services.web.folding import fold
from shared.broker.outcome import (
    ATTEMPTS_HEADER,
    ERROR_HEADER,
    FAILED_AT_HEADER,
    QUEUE_HEADER,
    REASON_HEADER,
    SERVICE_HEADER,
)
from shared.broker.topology import Topology
from shared.db import sync_state
from shared.db.engine import make_engine

pytestmark = pytest.mark.slow
CHROMIUM = "/usr/bin/chromium"
PASSWORD = "Mật-khẩu-web-01"
DOCS_IMG = ROOT / "docs" / "img"


# A missing browser fails the test with one line saying what to install: never a silent skip.
assert Path(CHROMIUM).exists(), "Debian's chromium is missing: scripts/setup installs it (apt-get install -y chromium)"


def park_one(rabbit_url: str, topology: Topology, pg_url: str) -> str:
    """Takes one message off the download queue and dead-letters it the way a downloader would."""
    connection = pika.BlockingConnection(pika.URLParameters(rabbit_url))
    channel = connection.channel()
    topology.declare(channel)  # the fetcher may not have declared its queues yet
    channel.confirm_delivery()
    work = topology.queue("download")
    method, props, body = wait_for(lambda: (lambda got: got if got[0] else None)(channel.basic_get(work)),
                                   timeout=60, what="a fetched dossier in the download queue")
    headers = dict(props.headers or {})
    dossier = json.loads(body)
    mahoso = dossier["mahoso"]
    headers.update({REASON_HEADER: "file-not-found", ERROR_HEADER: f"HTTP 404 for a file of {mahoso}",
                    SERVICE_HEADER: "downloader", ATTEMPTS_HEADER: 4, QUEUE_HEADER: work,
                    FAILED_AT_HEADER: datetime.now(UTC).isoformat()})
    props.headers = headers
    channel.basic_publish("", topology.dead_letter_queue("download"), body, props)
    channel.basic_ack(method.delivery_tag)
    connection.close()
    engine = make_engine(pg_url)
    with engine.begin() as db:  # as the downloader records it, whether or not the fetcher has recorded it yet
        sync_state.record_failure(db, mahoso, dossier["madonvi"], "file-not-found",
                                  f"HTTP 404 for a file of {mahoso}", final=True)
    engine.dispose()
    return mahoso


def database_numbers(pg_url: str) -> dict[str, dict[str, int]]:
    now = datetime.now(UTC)
    today = datetime(now.year, now.month, now.day, tzinfo=UTC)
    engine = make_engine(pg_url)
    numbers: dict[str, dict[str, int]] = {}
    with engine.connect() as db:
        for unit, all_, today_n, week in db.execute(sqlalchemy.text(
                "SELECT madonvi, count(synced_at), count(synced_at) FILTER (WHERE synced_at >= :t), "
                "count(synced_at) FILTER (WHERE synced_at >= :w) FROM ho_so GROUP BY madonvi"),
                {"t": today, "w": today - timedelta(days=6)}):
            numbers.setdefault(unit, {}).update(all=all_, today=today_n, week=week)
        for unit, inflight, parked in db.execute(sqlalchemy.text(
                "SELECT madonvi, count(*) FILTER (WHERE status IN ('queued', 'stored', 'indexed')), "
                "count(*) FILTER (WHERE status = 'failed') FROM sync_state GROUP BY madonvi")):
            numbers.setdefault(unit, {}).update(inflight=inflight, parked=parked)
    engine.dispose()
    return numbers


def test_officials_use_the_web_application(simulator_factory, rabbit_url, pg_url, s3_server, bucket, queue_prefix,
                                           tmp_path):
    sim = simulator_factory("--seed", "11", "--units", "2", "--dossiers", "14", "--files-per-dossier", "2",
                            "--file-size", "3000-40000")
    units = sorted({d["madonvi"] for d in sim_dossiers(sim)})
    expected = expected_dossiers(sim)
    pipeline = Pipeline.configure(sim=sim, units=units, rabbit_url=rabbit_url, pg_url=pg_url, s3=s3_server,
                                  bucket=bucket, queue_prefix=queue_prefix)
    pipeline.dongbo("db", "upgrade")
    topology = Topology(queue_prefix, (0.5, 1.0, 2.0))
    engine = make_engine(pg_url)
    web = None
    try:
        pipeline.start("fetcher")
        parked = park_one(rabbit_url, topology, pg_url)
        for service in ("downloader", "indexer", "acker"):
            pipeline.start(service)
        wait_for(lambda: _synced(engine) >= len(expected) - 1, timeout=180, interval=0.5,
                 what="every other dossier synced")

        # Accounts: one through the command (password on stdin), two directly.
        added = subprocess.run([sys.executable, "-m", "cli.main", "users", "add", "canbo", "--role", "operator"],
                               input=PASSWORD + "\n", text=True, capture_output=True, cwd=ROOT,
                               env=pipeline._environ(), timeout=60)
        assert added.returncode == 0, added.stderr
        accounts.add_user(engine, "xem", "viewer", [], PASSWORD)
        accounts.add_user(engine, "donvi1", "viewer", [units[0]], PASSWORD)

        port = free_port()
        with open(tmp_path / "web.log", "ab") as log:
            web = subprocess.Popen([sys.executable, "-m", "cli.main", "web", "--port", str(port)], cwd=ROOT,
                                   env=pipeline._environ(), stdout=log, stderr=subprocess.STDOUT,
                                   start_new_session=True)
        base = f"http://127.0.0.1:{port}"
        wait_for(lambda: requests.get(base + "/healthz", timeout=1).ok, timeout=30, what="dongbo web")
        run_browser(base, tmp_path, engine, pg_url, units, parked, sim)
    finally:
        if web is not None:
            web.terminate()
            web.wait(10)
        pipeline.stop_all()
        engine.dispose()


def _synced(engine) -> int:
    with engine.connect() as db:
        return db.execute(sqlalchemy.text("SELECT count(*) FROM ho_so WHERE synced_at IS NOT NULL")).scalar()


def change_after_marking(sim, engine, unit: str, parked: str) -> dict:
    """The vendor removes one file of a synced dossier of `unit`; waits for the pipeline to archive the
    dossier's second version. Returns the removed file's row (its object must stay downloadable)."""
    with engine.connect() as db:
        mahoso = db.execute(sqlalchemy.text(
            "SELECT t.mahoso FROM tai_lieu t JOIN ho_so h ON h.id = t.ho_so_id WHERE h.madonvi = :u "
            "AND h.synced_at IS NOT NULL AND t.mahoso <> :p GROUP BY t.mahoso "
            "HAVING count(DISTINCT t.matailieu) = 2 AND count(*) = 2 ORDER BY t.mahoso LIMIT 1"),
            {"u": unit, "p": parked}).scalar_one()
        old = dict(db.execute(sqlalchemy.text("SELECT * FROM tai_lieu WHERE mahoso = :m ORDER BY matailieu, id "
                                              "LIMIT 1"), {"m": mahoso}).mappings().one())
    requests.post(sim.root + f"/_sim/dossiers/{mahoso}/files", json={"remove": [old["matailieu"]]},
                  timeout=10).raise_for_status()

    def archived_again() -> bool:
        with engine.connect() as db:
            versions = db.execute(sqlalchemy.text("SELECT count(*) FROM ho_so_version WHERE mahoso = :m"),
                                  {"m": mahoso}).scalar()
        return versions == 2 and _status(engine, mahoso) == "synced"

    wait_for(archived_again, timeout=90, interval=0.5, what=f"{mahoso}'s second version archived")
    return old


def run_browser(base: str, out: Path, engine, pg_url: str, units: list[str], parked: str, sim) -> None:
    from playwright.sync_api import expect, sync_playwright

    def shot(page, name: str) -> Path:
        path = out / f"{name}.png"
        page.screenshot(path=str(path), full_page=True)
        return path

    with engine.connect() as db:
        pick = db.execute(sqlalchemy.text(
            "SELECT h.id, h.mahoso, h.tentochuccanhan, h.madonvi FROM ho_so h WHERE h.tentochuccanhan <> '' "
            "AND EXISTS (SELECT 1 FROM tai_lieu t WHERE t.ho_so_id = h.id AND t.content_type = 'application/pdf') "
            "ORDER BY h.id LIMIT 1")).mappings().one()
        other_unit_file = db.execute(sqlalchemy.text(
            "SELECT t.id FROM tai_lieu t JOIN ho_so h ON h.id = t.ho_so_id WHERE h.madonvi <> :u LIMIT 1"),
            {"u": units[0]}).scalar()

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"])
        try:
            context = browser.new_context(accept_downloads=True, viewport={"width": 1280, "height": 900},
                                          locale="vi-VN")
            context.set_default_timeout(20_000)
            page = context.new_page()

            # Logged out: sent to the log-in page.
            page.goto(base + "/search?q=abc")
            assert "/login?next=" in page.url
            shot(page, "01-login")
            page.fill("input[name=username]", "canbo")
            page.fill("input[name=password]", PASSWORD)
            page.click("button[type=submit]")
            page.wait_for_url(re.compile(r"/search\?q=abc$"))

            # Search by the name with and without diacritics, and by a prefix of mahoso.
            name = pick["tentochuccanhan"]
            for q in (name, fold(name), pick["mahoso"][:-2]):
                page.goto(base + "/search")
                page.fill("input[name=q]", q)
                page.click("form.search button[type=submit]")
                expect(page.locator("table.results")).to_contain_text(pick["mahoso"])
            assert fold(name) != name or name.isascii()
            page.goto(base + "/search?" + requests.compat.urlencode({"q": fold(name)}))
            search_shot = shot(page, "02-search")

            # The dossier, its PDF preview, and a download whose SHA-256 matches the stored one.
            page.click(f"a[href='/dossier/{pick['id']}']")
            expect(page.locator("#mahoso")).to_have_text(pick["mahoso"])
            frame = page.locator("iframe.pdf").first
            expect(frame).to_be_visible()
            preview = context.request.get(base + frame.get_attribute("src"))
            assert preview.status == 200 and preview.headers["content-type"] == "application/pdf"
            assert preview.body().startswith(b"%PDF")
            page.wait_for_load_state("load")
            page.wait_for_timeout(2500)  # the PDF viewer draws after the load event; no event tells when
            dossier_shot = shot(page, "03-dossier")
            link = page.locator("a.download").first
            file_id = int(link.get_attribute("href").rsplit("/", 1)[1])
            with page.expect_download() as info:
                link.click()
            download = info.value
            saved = out / "downloaded.bin"
            download.save_as(saved)
            with engine.connect() as db:
                stored = db.execute(sqlalchemy.text("SELECT sha256, ten_file FROM tai_lieu WHERE id = :i"),
                                    {"i": file_id}).mappings().one()
            assert hashlib.sha256(saved.read_bytes()).hexdigest() == stored["sha256"]
            # The Vietnamese name travels whole in filename* (Chromium may shorten a long name when saving).
            disposition = context.request.get(base + f"/file/{file_id}").headers["content-disposition"]
            assert unquote(disposition.split("filename*=UTF-8''", 1)[1]) == stored["ten_file"]
            assert download.suggested_filename.rsplit(".", 1)[-1] == stored["ten_file"].rsplit(".", 1)[-1]

            # The dashboard shows what the database holds.
            numbers = database_numbers(pg_url)
            page.goto(base + "/health")
            shot(page, "04-health")
            for unit, expected in numbers.items():
                row = page.locator(f"tr[data-unit='{unit}']")
                for css, key in (("today", "today"), ("week", "week"), ("all", "all"), ("inflight", "inflight"),
                                 ("parked", "parked")):
                    assert row.locator(f"td.{css}").inner_text() == str(expected.get(key, 0)), (unit, key)
            assert numbers[next(u for u in numbers if numbers[u].get("parked"))]["parked"] == 1
            assert page.locator("svg rect.bar").count() == 30 * len(page.locator("figure.chart").all())

            # A form posted without its CSRF token is refused.
            refused = context.request.post(base + "/dead-letters/replay", form={"reason": "file-not-found"})
            assert refused.status == 403

            # The operator replays the parked dossier and sees it synced.
            page.goto(base + "/dead-letters")
            row = page.locator(f"tr[data-mahoso='{parked}']")
            expect(row).to_contain_text("file-not-found")
            shot(page, "05-dead-letters")
            row.locator("button.replay").click()
            expect(page.locator("#replayed")).to_contain_text("1")
            wait_for(lambda: _status(engine, parked) == "synced", timeout=90, interval=0.5,
                     what=f"{parked} synced after the replay")
            page.goto(base + "/search?" + requests.compat.urlencode({"q": parked}))
            page.click("table.results a")
            expect(page.locator("#state")).to_have_text("Đã đồng bộ")
            shot(page, "06-replayed-dossier")

            page.goto(base + "/access-log")
            expect(page.locator("table.log")).to_contain_text("Tải tệp")
            expect(page.locator("table.log")).to_contain_text("Chạy lại thư chết")
            shot(page, "07-access-log")

            # A dossier the vendor changed after it was marked: both versions on its page, the file the
            # new version dropped still downloadable, byte for byte.
            old = change_after_marking(sim, engine, units[1], parked)
            page.goto(base + f"/dossier/{old['ho_so_id']}")
            expect(page.locator("article.version")).to_have_count(2)
            expect(page.locator("#version-2 h3")).to_contain_text("hiện tại")
            dropped = page.locator(f"#version-1 tr.superseded[data-file='{old['id']}']")
            expect(dropped).to_contain_text("Đã thay thế")
            expect(page.locator(f"#version-2 tr[data-file='{old['id']}']")).to_have_count(0)
            expect(page.locator(f"table.files tr#file-{old['id']}")).to_have_count(0)  # not among the current
            shot(page, "10-versions")
            fetched = context.request.get(base + dropped.locator("a.version-download").get_attribute("href"))
            assert fetched.status == 200 and hashlib.sha256(fetched.body()).hexdigest() == old["sha256"]
            assert len(fetched.body()) == old["size"]
            context.close()

            # A viewer is refused the operator pages.
            viewer = browser.new_context()
            page = viewer.new_page()
            login(page, base, "xem")
            response = page.goto(base + "/dead-letters")
            assert response.status == 403
            shot(page, "08-viewer-refused")
            assert page.goto(base + "/access-log").status == 403
            viewer.close()

            # A user limited to one unit cannot reach another unit's file by its URL.
            limited = browser.new_context()
            page = limited.new_page()
            login(page, base, "donvi1")
            assert page.goto(base + f"/file/{other_unit_file}").status == 404
            assert limited.request.get(base + f"/file/{other_unit_file}/preview").status == 404
            # Nor an older version's file of another unit.
            assert limited.request.get(base + f"/file/{old['id']}").status == 404
            assert limited.request.get(base + f"/dossier/{old['ho_so_id']}").status == 404
            shot(page, "09-other-unit-404")
            limited.close()
        finally:
            browser.close()

    if os.environ.get("DONGBO_UPDATE_SCREENSHOTS"):  # the README's pictures, refreshed on request only
        DOCS_IMG.mkdir(parents=True, exist_ok=True)
        shutil.copy(search_shot, DOCS_IMG / "web-search.png")
        shutil.copy(dossier_shot, DOCS_IMG / "web-dossier.png")
    with engine.connect() as db:
        logins = db.execute(sqlalchemy.text("SELECT count(*) FROM access_log WHERE action = 'login'")).scalar()
    assert logins == 3


def login(page, base: str, username: str) -> None:
    page.goto(base + "/login")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(re.compile(r"/search$"))


def _status(engine, mahoso: str) -> str | None:
    with engine.connect() as db:
        return db.execute(sqlalchemy.text("SELECT status FROM sync_state WHERE mahoso = :m"), {"m": mahoso}).scalar()


