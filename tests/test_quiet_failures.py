"""A refused connection or login is one log line per attempt, with the reason and the next delay; no traceback.

Run against the real broker on 127.0.0.1 with a wrong password: the service must keep trying quietly, as it
does while an operator fixes the setting, instead of printing pika's tracebacks on every attempt.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from harness.services import ROOT, wait_for

WRONG_PASSWORD = "not-the-p@ss@word"


def _service_env(rabbit_url: str, tmp_path: Path, **extra: str) -> dict[str, str]:
    parts = urlsplit(rabbit_url)
    host = parts.hostname or "127.0.0.1"
    wrong = f"amqp://{parts.username or 'guest'}:{WRONG_PASSWORD}@{host}:{parts.port or 5672}/%2F"
    env = {key: value for key, value in os.environ.items() if not key.startswith("DONGBO_")}
    env.update(
        {
            "DONGBO_AMQP_URL": wrong,
            "DONGBO_DATABASE_URL": f"sqlite:///{tmp_path / 'dongbo.db'}",
            "DONGBO_LOG_JSON": "true",
            "DONGBO_LOG_LEVEL": "INFO",
            **extra,
        }
    )
    return env


def _run_for(seconds: float, args: list[str], env: dict[str, str], cwd: Path) -> list[str]:
    process = subprocess.Popen([sys.executable, "-m", "cli.main", *args], env=env, cwd=cwd,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(seconds)
    process.send_signal(signal.SIGTERM)
    try:
        _, stderr = process.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        _, stderr = process.communicate()
    return stderr.splitlines()


def _run_until(done, args: list[str], env: dict[str, str], cwd: Path, timeout: float = 60) -> list[str]:
    """Runs a service until `done(lines of its log)` holds (a loaded machine may take seconds to start it)."""
    log = cwd / "service.log"
    with open(log, "w") as sink:
        process = subprocess.Popen([sys.executable, "-m", "cli.main", *args], env=env, cwd=cwd,
                                   stdout=subprocess.DEVNULL, stderr=sink, text=True)
    try:
        wait_for(lambda: done(log.read_text().splitlines()), timeout=timeout, interval=0.2, what="the log line")
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    return log.read_text().splitlines()


def _debug_traceback(lines: list[str]) -> bool:
    records = [json.loads(line) for line in lines if line.startswith("{")]
    return any("traceback" in r for r in records if r["level"] == "debug")


def test_a_wrong_broker_password_logs_one_line_per_attempt(rabbit_url, tmp_path):
    env = _service_env(rabbit_url, tmp_path, PYTHONPATH=str(ROOT))
    upgrade = subprocess.run([sys.executable, "-m", "cli.main", "db", "upgrade"], env=env, cwd=tmp_path,
                             capture_output=True, text=True, timeout=120)
    assert upgrade.returncode == 0, upgrade.stderr

    lines = _run_for(6.0, ["indexer"], env, tmp_path)

    records = []
    for line in lines:
        try:
            records.append(json.loads(line))
        except ValueError:
            pytest.fail(f"a log line that is not one JSON event (a traceback?): {line!r}")
    attempts = [r for r in records if "RabbitMQ at" in r["message"]]
    assert len(attempts) >= 3, records  # 0.5 s, 1 s, 2 s…: several attempts in six seconds
    for record in attempts:
        assert record["level"] == "warning"
        assert "ACCESS_REFUSED" in record["message"] or "refused" in record["message"].lower(), record
        assert "next try in" in record["message"]
        assert "amqp://guest:***@" in record["message"]
    problems = [r for r in records if r["level"] in ("warning", "error", "critical") and r not in attempts]
    assert not problems, "each attempt is one line and nothing else"
    assert not any("traceback" in r for r in records)
    assert not any(r["logger"].startswith("pika") for r in records), "pika's own lines are for DEBUG"
    text = "\n".join(lines)
    assert WRONG_PASSWORD not in text and "ss@word" not in text, "no part of the password is shown"


def test_at_debug_the_traceback_is_there(rabbit_url, tmp_path):
    env = _service_env(rabbit_url, tmp_path, PYTHONPATH=str(ROOT), DONGBO_LOG_LEVEL="DEBUG")
    subprocess.run([sys.executable, "-m", "cli.main", "db", "upgrade"], env=env, cwd=tmp_path,
                   capture_output=True, text=True, timeout=120, check=True)
    lines = _run_until(_debug_traceback, ["indexer"], env, tmp_path)
    assert _debug_traceback(lines)
    assert WRONG_PASSWORD not in "\n".join(lines)
