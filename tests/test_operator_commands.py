"""The operator commands against the real servers: `dongbo dlq`, `status`, `check` and `backfill`.

The dlq, status and check commands run in-process (`cli.main.main`) with the settings in the environment;
backfill runs as a separate process, so that it can be killed in the middle and resumed.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from datetime import UTC, date, datetime, timedelta

import pika
import pytest
import requests
import sqlalchemy

from cli.main import main
from harness.pipeline import queue_depths, sim_dossiers
from harness.queues import take
from harness.services import ROOT, free_port, wait_for
from shared.broker.outcome import (
    ATTEMPTS_HEADER,
    ERROR_HEADER,
    FAILED_AT_HEADER,
    QUEUE_HEADER,
    REASON_HEADER,
    SERVICE_HEADER,
)
from shared.broker.publisher import ATTEMPT_HEADER, MADONVI_HEADER, MAHOSO_HEADER, properties
from shared.broker.topology import Topology
from shared.db.engine import upgrade
from shared.messages import DossierFetched

DELAYS = "0.5,1,2"
FAILURE_HEADERS = (REASON_HEADER, ERROR_HEADER, SERVICE_HEADER, ATTEMPTS_HEADER, QUEUE_HEADER, FAILED_AT_HEADER)


@pytest.fixture
def settings_env(monkeypatch, tmp_path, rabbit_url, queue_prefix, pg_url):
    """The environment the commands read their settings from (and nothing else of DONGBO_*)."""
    for name in list(os.environ):
        if name.startswith("DONGBO_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)  # no stray .env
    env = {"DONGBO_AMQP_URL": rabbit_url, "DONGBO_DATABASE_URL": pg_url, "DONGBO_QUEUE_PREFIX": queue_prefix,
           "DONGBO_RETRY_DELAYS": DELAYS, "DONGBO_DELIVERY_LIMIT": "1"}
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return env


@pytest.fixture
def topology(queue_prefix) -> Topology:
    return Topology(queue_prefix, (0.5, 1.0, 2.0), delivery_limit=1)


@pytest.fixture
def channel(rabbit_url, topology):
    connection = pika.BlockingConnection(pika.URLParameters(rabbit_url))
    channel = connection.channel()
    topology.declare(channel)
    channel.confirm_delivery()
    yield channel
    connection.close()


def dongbo(capsys, *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def dongbo_json(capsys, *args: str) -> dict:
    code, out, err = dongbo(capsys, *args, "--json")
    assert code == 0, err
    return json.loads(out)


# -- dead letters ---------------------------------------------------------------------------------------


def dead_letter(channel, topology: Topology, stage: str, mahoso: str, madonvi: str, reason: str, attempts: int = 1):
    """A message as a service dead-letters it (shared/broker/consumer.py)."""
    message = DossierFetched(mahoso=mahoso, madonvi=madonvi)
    headers = {MAHOSO_HEADER: mahoso, MADONVI_HEADER: madonvi, ATTEMPT_HEADER: attempts - 1,
               REASON_HEADER: reason, ERROR_HEADER: f"{reason} for {mahoso}", SERVICE_HEADER: "downloader",
               ATTEMPTS_HEADER: attempts, QUEUE_HEADER: topology.queue(stage),
               FAILED_AT_HEADER: "2024-05-01T10:00:00+00:00"}
    channel.basic_publish("", topology.dead_letter_queue(stage), message.to_bytes(), properties(message, headers))


def broker_dead_letter(channel, topology: Topology, mahoso: str, madonvi: str) -> None:
    """A message the broker dead-letters itself: redelivered past the work queue's delivery limit (1)."""
    message = DossierFetched(mahoso=mahoso, madonvi=madonvi)
    work, dlq = topology.queue("download"), topology.dead_letter_queue("download")
    parked = depth(channel, dlq)
    channel.basic_publish("", work, message.to_bytes(),
                          properties(message, {MAHOSO_HEADER: mahoso, MADONVI_HEADER: madonvi, ATTEMPT_HEADER: 2}))
    for _ in range(2):  # as if two workers died on it
        method, _, _ = wait_for(lambda: (lambda got: got if got[0] else None)(channel.basic_get(work)), timeout=10,
                                what="the message in the work queue")
        channel.basic_nack(method.delivery_tag, requeue=True)
    wait_for(lambda: depth(channel, dlq) == parked + 1, timeout=10,
             what="the broker to dead-letter the message")


def depth(channel, queue: str) -> int:
    return channel.queue_declare(queue, passive=True).method.message_count


@pytest.fixture
def dead_letters(channel, topology):
    """Five dead letters: three services' in download, one in index, one the broker's own (M5)."""
    dead_letter(channel, topology, "download", "M1", "U1", "file-not-found")
    dead_letter(channel, topology, "download", "M2", "U1", "forbidden-host")
    dead_letter(channel, topology, "download", "M3", "U2", "file-not-found", attempts=4)
    dead_letter(channel, topology, "index", "M4", "U2", "database-unavailable", attempts=4)
    broker_dead_letter(channel, topology, "M5", "U1")
    return channel


def test_dlq_list_and_show_read_every_message_and_take_none(settings_env, dead_letters, topology, capsys):
    listing = dongbo_json(capsys, "dlq", "list")
    download, index = topology.dead_letter_queue("download"), topology.dead_letter_queue("index")
    assert listing["total"] == 5
    assert listing["queues"][download] == {"messages": 4, "reasons": {"file-not-found": 2, "forbidden-host": 1,
                                                                      "delivery-limit": 1}}
    assert listing["queues"][index] == {"messages": 1, "reasons": {"database-unavailable": 1}}
    assert listing["queues"][topology.dead_letter_queue("ack")] == {"messages": 0, "reasons": {}}
    assert listing["units"] == {"U1": 3, "U2": 2}
    assert dongbo_json(capsys, "dlq", "list", "--unit", "U1", "--queue", "download")["total"] == 3

    code, text, _ = dongbo(capsys, "dlq", "list")
    assert code == 0 and "delivery-limit" in text and f"{download}  file-not-found" in text

    broker = dongbo_json(capsys, "dlq", "show", "--reason", "delivery-limit")["messages"]
    assert len(broker) == 1
    assert broker[0] | {"error": "", "failed_at": ""} == {
        "dlq": download, "queue": topology.queue("download"), "mahoso": "M5", "madonvi": "U1",
        "reason": "delivery-limit", "error": "", "service": "broker", "attempts": 3, "failed_at": ""}
    assert "delivery limit" in broker[0]["error"] and broker[0]["failed_at"]

    [m3] = dongbo_json(capsys, "dlq", "show", "--mahoso", "M3", "--body")["messages"]
    assert (m3["reason"], m3["attempts"], m3["service"], m3["failed_at"]) == ("file-not-found", 4, "downloader",
                                                                              "2024-05-01T10:00:00+00:00")
    assert json.loads(m3["body"])["mahoso"] == "M3"
    assert dongbo_json(capsys, "dlq", "show", "--reason", "file-not-found", "--limit", "1")["count"] == 1

    code, text, _ = dongbo(capsys, "dlq", "show", "--unit", "U2", "--body")
    assert code == 0 and "M3" in text and "M4" in text and "M1" not in text and '"mahoso":"M3"' in text

    # Reading took nothing away.
    wait_for(lambda: depth(dead_letters, download) == 4 and depth(dead_letters, index) == 1, timeout=10,
             what="every dead letter back in its queue")


def test_dlq_replay_moves_only_the_matching_ones_with_a_fresh_start(settings_env, dead_letters, topology, capsys):
    download, work = topology.dead_letter_queue("download"), topology.queue("download")
    dry = dongbo_json(capsys, "dlq", "replay", "--unit", "U1", "--dry-run")
    assert dry["total"] == 3 and dry["dry_run"] is True
    assert depth(dead_letters, work) == 0

    replay = dongbo_json(capsys, "dlq", "replay", "--unit", "U1")
    assert replay["total"] == 3
    assert sorted(replay["queues"][download]["mahoso"]) == ["M1", "M2", "M5"]
    assert replay["queues"][download]["target"] == work
    wait_for(lambda: depth(dead_letters, work) == 3, timeout=10, what="three replayed messages")
    # Messages given back by a quorum queue are counted again a moment later.
    wait_for(
        lambda: depth(dead_letters, download) == 1 and depth(dead_letters, topology.dead_letter_queue("index")) == 1,
        timeout=10,
        what="the other dead letters back in place",
    )

    # A second replay finds nothing more to move.
    again = dongbo_json(capsys, "dlq", "replay", "--unit", "U1")
    assert again["total"] == 0
    wait_for(
        lambda: depth(dead_letters, work) == 3 and depth(dead_letters, download) == 1,
        timeout=10,
        what="nothing moved by the second replay",
    )

    replayed = take(dead_letters, work)
    assert sorted(h[MAHOSO_HEADER] for h, _ in replayed) == ["M1", "M2", "M5"]
    for headers, body in replayed:
        assert headers[ATTEMPT_HEADER] == 0
        assert not set(FAILURE_HEADERS) & set(headers)
        assert not [k for k in headers if k == "x-death" or k.startswith(("x-first-death", "x-last-death"))]
        assert DossierFetched.from_bytes(body).mahoso == headers[MAHOSO_HEADER]

    code, text, _ = dongbo(capsys, "dlq", "replay", "--reason", "database-unavailable")
    assert code == 0 and f"{topology.dead_letter_queue('index')}: replayed 1 to {topology.queue('index')}" in text


def test_dlq_declares_missing_queues_and_replays_onto_a_deleted_work_queue(
    settings_env, dead_letters, topology, capsys
):
    dead_letters.queue_delete(topology.queue("download"))
    dead_letters.queue_delete(topology.dead_letter_queue("ack"))
    assert dongbo_json(capsys, "dlq", "list", "--queue", "ack")["total"] == 0
    assert depth(dead_letters, topology.dead_letter_queue("ack")) == 0  # declared again

    dead_letters.queue_delete(topology.queue("download"))
    assert dongbo_json(capsys, "dlq", "replay", "--mahoso", "M3")["total"] == 1
    [(headers, _)] = take(dead_letters, topology.queue("download"))
    assert headers[MAHOSO_HEADER] == "M3" and headers[ATTEMPT_HEADER] == 0


def test_dlq_purge_deletes_only_the_matching_ones_and_only_when_told(settings_env, dead_letters, topology, capsys):
    download = topology.dead_letter_queue("download")
    code, _, err = dongbo(capsys, "dlq", "purge", "--reason", "file-not-found")
    assert code == 2 and "--yes" in err
    assert depth(dead_letters, download) == 4

    assert dongbo_json(capsys, "dlq", "purge", "--reason", "file-not-found", "--dry-run")["total"] == 2
    result = dongbo_json(capsys, "dlq", "purge", "--reason", "file-not-found", "--yes")
    assert result["total"] == 2 and sorted(result["queues"][download]["mahoso"]) == ["M1", "M3"]
    left = dongbo_json(capsys, "dlq", "show")["messages"]
    assert sorted(m["mahoso"] for m in left) == ["M2", "M4", "M5"]


def test_dlq_republishes_a_message_given_back_often_instead_of_wearing_it_out(
    settings_env, channel, topology, capsys, monkeypatch
):
    """Each give-back counts as a delivery, and quorum queues drop a message past their delivery limit."""
    import cli.dlq

    monkeypatch.setattr(cli.dlq, "REFRESH_AFTER", 3)
    broker_dead_letter(channel, topology, "M9", "U9")
    for _ in range(5):
        [shown] = dongbo_json(capsys, "dlq", "show")["messages"]
        assert (shown["mahoso"], shown["reason"], shown["queue"]) == (
            "M9",
            "delivery-limit",
            topology.queue("download"),
        )
    [(headers, _)] = take(channel, topology.dead_letter_queue("download"))
    assert headers["x-delivery-count"] < 3  # the copy started counting anew
    assert headers[REASON_HEADER] == "delivery-limit"  # and keeps its story in dongbo's own headers


def test_dlq_says_in_one_line_when_the_broker_is_unreachable(settings_env, monkeypatch, capsys):
    monkeypatch.setenv("DONGBO_AMQP_URL", f"amqp://guest:guest@127.0.0.1:{free_port()}/%2F")
    code, out, err = dongbo(capsys, "dlq", "list")
    assert code == 1 and out == "" and len(err.strip().splitlines()) == 1
    assert "cannot connect to RabbitMQ" in err and "guest:guest" not in err


# -- status ---------------------------------------------------------------------------------------------


def fill_database(pg_url: str) -> None:
    """U1: 2 queued, 1 stored, 1 indexed, 3 synced, 1 failed; U2: 1 synced. Files in ho_so/tai_lieu."""
    upgrade(pg_url)
    now = datetime.now(UTC)
    states = [
        ("U1", "queued", 2),
        ("U1", "queued", 1),
        ("U1", "stored", 0.5),
        ("U1", "indexed", 0.5),
        ("U1", "synced", 5),
        ("U1", "synced", 5),
        ("U1", "synced", 5),
        ("U1", "failed", 9),
        ("U2", "synced", 1),
    ]
    engine = sqlalchemy.create_engine(pg_url)
    with engine.begin() as connection:
        for n, (unit, status, hours) in enumerate(states):
            at = now - timedelta(hours=hours)
            connection.execute(
                sqlalchemy.text(
                    "INSERT INTO sync_state (mahoso, madonvi, status, source_hash, publish_count, attempts, "
                    "first_seen_at,"
                    " published_at, updated_at) VALUES (:m, :u, :s, '', 1, 0, :at, :at, :at)"
                ),
                {"m": f"{unit}-{n}", "u": unit, "s": status, "at": at},
            )
            if status in ("indexed", "synced"):
                ho_so_id = connection.execute(
                    sqlalchemy.text(
                        "INSERT INTO ho_so (mahoso, madonvi, tentochuccanhan, mathutuc, tenthutuc, file_count, state, "
                        "indexed_at) VALUES (:m, :u, '', '', '', 2, :s, :at) RETURNING id"
                    ),
                    {"m": f"{unit}-{n}", "u": unit, "s": status, "at": at},
                ).scalar_one()
                for f in range(2):
                    connection.execute(
                        sqlalchemy.text(
                            "INSERT INTO tai_lieu (ho_so_id, mahoso, matailieu, tentailieu, ten_file, url_file, "
                            "object_key, size, sha256, content_type, content_type_mismatch, stored_at) "
                            "VALUES (:h, :m, :t, '', '', 'http://x/f', :k, 100, :sha, 'application/pdf', false, :at)"
                        ),
                        {
                            "h": ho_so_id,
                            "m": f"{unit}-{n}",
                            "t": f"T{f}",
                            "k": f"{unit}/{n}/{f}",
                            "sha": "0" * 64,
                            "at": at,
                        },
                    )
        for instance, service, progress_ago, error in (
            ("fetcher@h:1", "fetcher", 30, None),
            ("acker@h:2", "acker", 1200, "onestop-unavailable: down"),
        ):
            connection.execute(
                sqlalchemy.text(
                    "INSERT INTO service_status (instance, service, started_at, last_progress_at, "
                    "last_error, last_error_at)"
                    " VALUES (:i, :s, :start, :p, :e, :p)"
                ),
                {
                    "i": instance,
                    "s": service,
                    "start": now - timedelta(hours=3),
                    "p": now - timedelta(seconds=progress_ago),
                    "e": error,
                },
            )
    engine.dispose()


def test_status_counts_dossiers_per_unit_queues_and_services(
    settings_env, pg_url, channel, topology, capsys, monkeypatch
):
    fill_database(pg_url)
    monkeypatch.setenv("DONGBO_UNITS", "U1,U2,U3")
    for _ in range(2):
        channel.basic_publish("", topology.queue("download"), b"{}")
    channel.basic_publish("", topology.dead_letter_queue("ack"), b"{}")
    channel.queue_delete(topology.retry_queue("index", 2))

    report = dongbo(capsys, "status", "--json")
    assert report[0] == 0, report[2]
    status = json.loads(report[1])
    u1 = status["units"]["U1"]
    assert {
        k: u1[k] for k in ("seen", "queued", "stored", "indexed", "synced", "failed", "archived", "files", "bytes")
    } == {
        "seen": 8,
        "queued": 2,
        "stored": 5,
        "indexed": 4,
        "synced": 3,
        "failed": 1,
        "archived": 4,
        "files": 8,
        "bytes": 800,
    }
    assert (
        7100 < u1["oldest_unsynced_seconds"] < 7300
    )  # the queued one of two hours ago; the failed one is not in flight
    assert status["units"]["U2"]["synced"] == 1 and status["units"]["U2"]["oldest_unsynced_seconds"] is None
    assert status["units"]["U3"] == {
        "seen": 0,
        "queued": 0,
        "stored": 0,
        "indexed": 0,
        "synced": 0,
        "failed": 0,
        "oldest_unsynced_seconds": None,
        "archived": 0,
        "files": 0,
        "bytes": 0,
    }
    assert status["queues"][topology.queue("download")] == 2
    assert status["queues"][topology.dead_letter_queue("ack")] == 1
    assert status["queues"][topology.retry_queue("index", 2)] is None
    assert set(status["queues"]) == set(topology.names())
    services = {s["service"]: s for s in status["services"]}
    assert services["fetcher"]["stale"] is False and services["acker"]["stale"] is True
    assert services["acker"]["last_error"] == "onestop-unavailable: down"
    assert 25 < status["last_poll_seconds_ago"] < 120
    assert status["totals"] | {"oldest_unsynced_seconds": 0} == {
        "seen": 9,
        "queued": 2,
        "stored": 6,
        "indexed": 5,
        "synced": 4,
        "failed": 1,
        "archived": 5,
        "files": 10,
        "bytes": 1000,
        "oldest_unsynced_seconds": 0,
        "queued_messages": 2,
        "dead_letters": 1,
        "stale_services": 1,
    }
    assert status["errors"] == []

    code, text, _ = dongbo(capsys, "status")
    assert code == 0 and "(stale)" in text and "last successful poll" in text
    assert any(line.split()[:7] == ["U1", "8", "5", "4", "3", "1", "2h00m"] for line in text.splitlines())

    # The broker down: the database part still shows, the error is one line, the password never.
    monkeypatch.setenv("DONGBO_AMQP_URL", f"amqp://guest:s3cr3t-pw@127.0.0.1:{free_port()}/%2F")
    code, text, _ = dongbo(capsys, "status")
    assert code == 1 and "s3cr3t-pw" not in text
    [error] = [line for line in text.splitlines() if line.startswith("error: rabbitmq amqp://")]
    assert ":***@127.0.0.1:" in error and "Connection refused" in error
    assert "U1" in text


# -- check ----------------------------------------------------------------------------------------------


@pytest.fixture
def full_env(settings_env, monkeypatch, s3_server, bucket, simulator_factory):
    from services.onestop_sim.seed import unit_codes

    sim = simulator_factory("--dossiers", "0")
    env = {
        "DONGBO_UNITS": ",".join(unit_codes(2)),
        "DONGBO_ONESTOP_URL": sim.api_url,
        "DONGBO_ONESTOP_USERNAME": "admin_sotaichinh",
        "DONGBO_ONESTOP_PASSWORD": "1",
        "DONGBO_S3_ENDPOINT": s3_server.endpoint,
        "DONGBO_S3_ACCESS_KEY": s3_server.access_key,
        "DONGBO_S3_SECRET_KEY": s3_server.secret_key,
        "DONGBO_S3_BUCKET": bucket,
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return settings_env | env


def test_check_says_ok_for_every_dependency(full_env, pg_url, capsys):
    upgrade(pg_url)
    code, out, _ = dongbo(capsys, "check")
    lines = out.splitlines()
    # The simulator holds no dossier: each unit is worth a warning, which does not fail the check.
    assert [line.split()[:2] for line in lines] == [
        ["ok", "settings:"],
        ["ok", "one-stop:"],
        ["warn", "units:"],
        ["warn", "units:"],
        ["ok", "rabbitmq:"],
        ["ok", "bucket:"],
        ["ok", "database:"],
        ["ok", "migrations:"],
    ], out
    assert code == 0


def test_check_names_each_broken_dependency_in_one_line(full_env, s3_server, monkeypatch, capsys):
    monkeypatch.setenv("DONGBO_AMQP_URL", f"amqp://guest:guest@127.0.0.1:{free_port()}/%2F")
    monkeypatch.setenv("DONGBO_S3_BUCKET", "no-such-bucket-dongbo")
    monkeypatch.setenv("DONGBO_ONESTOP_PASSWORD", "wrong-password")  # the database is left not upgraded
    code, out, err = dongbo(capsys, "check")
    lines = out.splitlines()
    assert code == 1 and len(lines) == 6, out
    status = {line.split()[1].rstrip(":"): line for line in lines}
    assert status["one-stop"].startswith("FAIL") and "wrong-password" not in out
    assert status["rabbitmq"].startswith("FAIL") and "cannot connect to amqp://" in status["rabbitmq"]
    assert "guest:guest" not in out
    assert status["bucket"].startswith("FAIL") and "no-such-bucket-dongbo does not exist" in status["bucket"]
    assert status["database"].startswith("ok")
    assert status["migrations"].startswith("FAIL") and "dongbo db upgrade" in status["migrations"]
    assert s3_server.client().bucket_exists("no-such-bucket-dongbo") is False

    monkeypatch.setenv("DONGBO_RETRY_DELAYS", "soon")
    code, out, err = dongbo(capsys, "check")
    assert (
        code == 2
        and err.strip().startswith("dongbo check: DONGBO_RETRY_DELAYS:")
        and len(err.strip().splitlines()) == 1
    )


# -- backfill -------------------------------------------------------------------------------------------


def backfill_env(sim, rabbit_url, pg_url, queue_prefix, unit) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DONGBO_")}
    env.update(
        {
            "DONGBO_ONESTOP_URL": sim.api_url,
            "DONGBO_ONESTOP_USERNAME": "admin_sotaichinh",
            "DONGBO_ONESTOP_PASSWORD": "1",
            "DONGBO_UNITS": unit,
            "DONGBO_AMQP_URL": rabbit_url,
            "DONGBO_DATABASE_URL": pg_url,
            "DONGBO_QUEUE_PREFIX": queue_prefix,
            "DONGBO_RETRY_DELAYS": DELAYS,
            "DONGBO_DELIVERY_LIMIT": "1",
            "DONGBO_ALLOWED_FILE_HOSTS": "127.0.0.1",
            "PYTHONPATH": str(ROOT),
        }
    )
    return env


def windows_recorded(pg_url: str) -> int:
    engine = sqlalchemy.create_engine(pg_url)
    try:
        with engine.connect() as connection:
            return connection.execute(sqlalchemy.text("SELECT count(*) FROM backfill_window")).scalar_one()
    finally:
        engine.dispose()


def sync_calls(sim) -> int:
    return requests.get(sim.root + "/_sim/stats", timeout=10).json()["sync_calls"]


def test_backfill_pulls_a_range_in_windows_resumes_and_restarts(
    simulator_factory, rabbit_url, pg_url, queue_prefix, channel, topology
):
    sim = simulator_factory(
        "--seed",
        "3",
        "--units",
        "2",
        "--dossiers",
        "1500",
        "--files-per-dossier",
        "1",
        "--file-size",
        "1000",
        "--latency-ms",
        "250",
    )  # slow enough to kill the first run in the middle
    unit = sorted({d["madonvi"] for d in sim_dossiers(sim)})[0]
    first, last = date(2022, 3, 1), date(2022, 4, 29)  # 60 days: 12 windows of 5
    expected = {
        d["mahoso"]
        for d in sim_dossiers(sim)
        if d["madonvi"] == unit and first <= datetime.strptime(d["ngaynhan"], "%d/%m/%Y").date() <= last
    }
    assert len(expected) >= 10
    upgrade(pg_url)
    env = backfill_env(sim, rabbit_url, pg_url, queue_prefix, unit)
    args = [
        sys.executable,
        "-m",
        "cli.main",
        "backfill",
        "--unit",
        unit,
        "--from",
        "01/03/2022",
        "--to",
        "29/04/2022",
        "--window-days",
        "5",
        "--overlap-days",
        "1",
    ]

    # Interrupted: killed outright after a few windows.
    process = subprocess.Popen(args, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:

        def three_windows():
            assert process.poll() is None, process.communicate()
            return windows_recorded(pg_url) >= 3

        wait_for(three_windows, timeout=30, what="three finished windows")
    finally:
        process.send_signal(signal.SIGKILL)
        output = process.communicate()
    finished = windows_recorded(pg_url)
    assert 3 <= finished < 12, output
    requests.post(sim.root + "/_sim/faults", json={"latency_ms": 0}, timeout=10).raise_for_status()

    # Resumed: only the windows not finished are asked for again.
    before = sync_calls(sim)
    result = subprocess.run(args, cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert f"12 windows ({finished} finished earlier)" in result.stdout
    assert "windows 12/12" in result.stderr  # the progress line
    assert sync_calls(sim) - before == 12 - finished
    assert windows_recorded(pg_url) == 12

    # Each dossier of the range went to the download queue once, and nothing outside it.
    assert queue_depths(rabbit_url, [topology.queue("download")])[topology.queue("download")] == len(expected)

    # --restart forgets the range and reads every window again; dossiers already on their way are not resent.
    before = sync_calls(sim)
    result = subprocess.run(args + ["--restart"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "forgot 12 finished windows" in result.stdout and "(0 finished earlier)" in result.stdout
    assert sync_calls(sim) - before == 12
    queued = [headers[MAHOSO_HEADER] for headers, _ in take(channel, topology.queue("download"))]
    assert sorted(queued) == sorted(expected)


def test_backfill_refuses_bad_dates_with_a_clear_error(settings_env, capsys):
    code, _, err = dongbo(capsys, "backfill", "--unit", "U1", "--from", "10/05/2024", "--to", "01/05/2024")
    assert code == 2 and err.strip() == "dongbo backfill: --from 10/05/2024 is after --to 01/05/2024"
    with pytest.raises(SystemExit) as exit_info:
        main(["backfill", "--unit", "U1", "--from", "2024-05-01", "--to", "01/05/2024"])
    assert exit_info.value.code == 2
    assert "'2024-05-01' is not a date as dd/mm/yyyy" in capsys.readouterr().err


def test_the_services_schema_check_agrees_with_the_migrations(pg_url):
    """Services compare the database with a constant instead of loading alembic: it must be the head."""
    from shared.db.engine import HEAD_REVISION, current_revision, make_engine, migrations_head, wait_for_schema
    from shared.errors import ConfigError

    assert migrations_head() == HEAD_REVISION
    engine = make_engine(pg_url)
    assert current_revision(engine) is None
    with pytest.raises(ConfigError, match="dongbo db upgrade"):
        wait_for_schema(engine, "test", attempts=1)
    upgrade(pg_url)
    assert current_revision(engine) == HEAD_REVISION
    wait_for_schema(engine, "test", attempts=1)
