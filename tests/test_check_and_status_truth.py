"""`dongbo check` fails on settings that cannot work, and `dongbo status` tells only what is true now.

check: exit 2 for a missing required setting, no units, or a unit code that cannot be one (a `;` list
included); a warning, exit 0, for a unit the one-stop system returns no dossier for. status: a stopped
instance is hidden (and counted), an old error of a finished run is not shown as current, and a missing or
unreachable database gets the advice that fits, without a stray SQLite file.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy

from cli.main import main
from harness.pipeline import sim_dossiers
from harness.services import free_port
from shared.db.engine import upgrade


def dongbo(capsys, *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def clean_env(monkeypatch, tmp_path):
    """No DONGBO_* from the caller and no .env: only what a test sets."""
    for name in list(os.environ):
        if name.startswith("DONGBO_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.fixture
def sim(simulator_factory):
    return simulator_factory("--seed", "3", "--units", "2", "--dossiers", "6", "--files-per-dossier", "1",
                             "--file-size", "100-200")


@pytest.fixture
def good_env(clean_env, monkeypatch, sim, rabbit_url, queue_prefix, pg_url, s3_server, bucket):
    upgrade(pg_url)
    units = sorted({d["madonvi"] for d in sim_dossiers(sim)})
    env = {
        "DONGBO_ONESTOP_URL": sim.api_url,
        "DONGBO_ONESTOP_USERNAME": "admin_sotaichinh",
        "DONGBO_ONESTOP_PASSWORD": "1",
        "DONGBO_UNITS": ",".join(units),
        "DONGBO_AMQP_URL": rabbit_url,
        "DONGBO_QUEUE_PREFIX": queue_prefix,
        "DONGBO_DATABASE_URL": pg_url,
        "DONGBO_S3_ENDPOINT": s3_server.endpoint,
        "DONGBO_S3_ACCESS_KEY": s3_server.access_key,
        "DONGBO_S3_SECRET_KEY": s3_server.secret_key,
        "DONGBO_S3_BUCKET": bucket,
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return env


def lines_of(out: str) -> list[tuple[str, str, str]]:
    """(status, name, detail) of each report line."""
    result = []
    for line in out.splitlines():
        status, name, detail = line.split(None, 1)[0], *line.split(None, 1)[1].split(": ", 1)
        result.append((status, name, detail))
    return result


def test_check_with_good_settings_says_ok_for_each_unit(good_env, capsys):
    code, out, _ = dongbo(capsys, "check")
    report = lines_of(out)
    assert code == 0, out
    assert [(s, n) for s, n, _ in report] == [("ok", "settings"), ("ok", "one-stop"), ("ok", "units"),
                                              ("ok", "rabbitmq"), ("ok", "bucket"), ("ok", "database"),
                                              ("ok", "migrations")], out
    assert "2 of 2 units returned dossiers" in out


@pytest.mark.parametrize(("change", "expected"), [
    ({"DONGBO_ONESTOP_URL": None}, "DONGBO_ONESTOP_URL is not set"),
    ({"DONGBO_ONESTOP_PASSWORD": None}, "DONGBO_ONESTOP_PASSWORD is not set"),
    ({"DONGBO_UNITS": None}, "DONGBO_UNITS: no units"),
    ({"DONGBO_UNITS": " , "}, "DONGBO_UNITS: no units"),
    ({"DONGBO_UNITS": "000.00.17.H55;000.00.12.H55"}, "separate units with commas"),
    ({"DONGBO_UNITS": "000.00.17.H55,000.00.1.H55"}, "'000.00.1.H55' does not look like a unit code"),
], ids=["no-url", "no-password", "no-units", "blank-units", "semicolons", "typo"])
def test_check_exits_2_for_settings_that_cannot_work(good_env, monkeypatch, capsys, change, expected):
    for name, value in change.items():
        if value is None:
            monkeypatch.delenv(name)
        else:
            monkeypatch.setenv(name, value)
    code, out, _ = dongbo(capsys, "check")
    assert code == 2, out
    failures = [detail for status, name, detail in lines_of(out) if status == "FAIL" and name == "settings"]
    assert any(expected in detail for detail in failures), out
    # The dependencies are still tried: one run tells everything that is wrong.
    assert {name for _, name, _ in lines_of(out)} >= {"rabbitmq", "bucket", "database", "migrations"}


def test_check_warns_about_a_unit_that_returns_no_dossier(good_env, monkeypatch, capsys):
    monkeypatch.setenv("DONGBO_UNITS", good_env["DONGBO_UNITS"] + ",000.00.99.H55")
    code, out, _ = dongbo(capsys, "check")
    assert code == 0, out
    warnings = [detail for status, name, detail in lines_of(out) if status == "warn"]
    assert len(warnings) == 1 and warnings[0].startswith("000.00.99.H55 returned no dossier"), out
    assert "2 of 3 units returned dossiers" in out


def test_check_fails_for_a_dependency_with_exit_1(good_env, monkeypatch, capsys):
    monkeypatch.setenv("DONGBO_AMQP_URL", f"amqp://guest:guest@127.0.0.1:{free_port()}/%2F")
    code, out, _ = dongbo(capsys, "check")
    assert code == 1 and any(s == "FAIL" and n == "rabbitmq" for s, n, _ in lines_of(out)), out


# -- status ---------------------------------------------------------------------------------------------


def add_instances(pg_url: str, rows: list[tuple[str, str, float, str | None, float | None]]) -> None:
    """(instance, service, seconds since progress, last error, seconds since the error) rows."""
    now = datetime.now(UTC)
    engine = sqlalchemy.create_engine(pg_url)
    with engine.begin() as connection:
        for instance, service, progress_ago, error, error_ago in rows:
            connection.execute(
                sqlalchemy.text("INSERT INTO service_status (instance, service, started_at, last_progress_at, "
                                "last_error, last_error_at) VALUES (:i, :s, :start, :p, :e, :ea)"),
                {"i": instance, "s": service, "start": now - timedelta(hours=1),
                 "p": now - timedelta(seconds=progress_ago), "e": error,
                 "ea": None if error_ago is None else now - timedelta(seconds=error_ago)},
            )
    engine.dispose()


@pytest.fixture
def live_service():
    """A running process whose command line names the services, as `python -m services.indexer` does."""
    process = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)", "services.indexer",
                                "services.downloader"])
    yield process.pid
    process.kill()
    process.wait()


def test_status_hides_stopped_instances_and_shows_only_current_errors(good_env, pg_url, capsys, live_service):
    host = socket.gethostname()
    ended = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead_pid = int(ended.stdout)  # a process that has certainly ended
    add_instances(pg_url, [
        (f"fetcher@{host}:{dead_pid}", "fetcher", 40, "onestop-unavailable: a --once run's last error", 45),
        (f"downloader@{host}:{live_service}", "downloader", 5, "file-not-found: an hour ago", 3600),
        (f"indexer@{host}:{live_service}", "indexer", 30, "database-unavailable: failing now", 10),
        ("acker@elsewhere:7", "acker", 4000, "onestop-unavailable: old", 4000),
    ])
    code, out, _ = dongbo(capsys, "status", "--json")
    services = {s["service"]: s for s in json.loads(out)["services"]}
    assert services["fetcher"]["state"] == "stopped" and not services["fetcher"]["error_current"]
    assert services["downloader"]["state"] == "running" and not services["downloader"]["error_current"]
    assert services["indexer"]["state"] == "running" and services["indexer"]["error_current"]
    assert services["acker"]["state"] == "stale"
    assert json.loads(out)["stopped_services"] == 1

    code, text, _ = dongbo(capsys, "status")
    assert code == 0, text
    assert f"fetcher@{host}" not in text and "1 stopped service instance not shown" in text
    assert "a --once run's last error" not in text and "an hour ago" not in text
    assert "failing now" in text and "(stale)" in text

    code, text, _ = dongbo(capsys, "status", "--all")
    assert f"fetcher@{host}:{dead_pid}" in text and "(stopped)" in text


def test_status_without_settings_advises_the_demo_and_creates_no_database(clean_env, monkeypatch, capsys):
    monkeypatch.setenv("DONGBO_AMQP_URL", f"amqp://guest:guest@127.0.0.1:{free_port()}/%2F")
    code, text, _ = dongbo(capsys, "status")
    assert code == 1
    [error] = [line for line in text.splitlines() if line.startswith("error: database")]
    assert f"no database file {clean_env / 'dongbo.db'}" in error and ". .demo/env" in error, error
    assert "db upgrade" not in error
    assert not (clean_env / "dongbo.db").exists()


def test_status_names_a_missing_sqlite_file_set_on_purpose(clean_env, monkeypatch, capsys):
    monkeypatch.setenv("DONGBO_DATABASE_URL", f"sqlite:///{clean_env}/archive/dongbo.db")
    monkeypatch.setenv("DONGBO_AMQP_URL", f"amqp://guest:guest@127.0.0.1:{free_port()}/%2F")
    code, text, _ = dongbo(capsys, "status")
    assert code == 1 and "to create an empty one there: dongbo db upgrade" in text, text
    assert not (clean_env / "archive" / "dongbo.db").exists()


def test_status_advice_for_unreachable_or_missing_postgresql(clean_env, monkeypatch, capsys, pg_url):
    monkeypatch.setenv("DONGBO_AMQP_URL", f"amqp://guest:guest@127.0.0.1:{free_port()}/%2F")
    monkeypatch.setenv("DONGBO_DATABASE_URL", f"postgresql+psycopg://postgres@127.0.0.1:{free_port()}/dongbo")
    code, text, _ = dongbo(capsys, "status")
    assert code == 1 and "is the database server running there" in text, text
    monkeypatch.setenv("DONGBO_DATABASE_URL", pg_url.rsplit("/", 1)[0] + "/dongbo_no_such_database")
    code, text, _ = dongbo(capsys, "status")
    assert code == 1 and "createdb" in text and "dongbo db upgrade" in text, text


def test_check_without_a_database_file_creates_none(clean_env, capsys):
    code, out, _ = dongbo(capsys, "check")
    assert code == 2
    assert any(s == "FAIL" and n == "database" and "no database file" in d for s, n, d in lines_of(out)), out
    assert Path.cwd() == clean_env and not (clean_env / "dongbo.db").exists()
