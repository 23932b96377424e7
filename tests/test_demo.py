"""scripts/demo as a new user meets it: a live progress line, then "all N dossiers synced in T s; ...", the
services' logs in files (not on the terminal), its settings file with absolute paths, a hint when it carries
on with an old state, `--fresh` to start over, and one clear line when a port it needs is taken."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import time
import uuid
from pathlib import Path

import pytest

from harness import services
from harness.services import ROOT, free_port

pytestmark = pytest.mark.slow

FINAL = re.compile(r"^all (\d+) dossiers synced in ([\d.]+) s; open another terminal and run: \. (\S+)/env "
                   r"&& dongbo status; stop with Ctrl-C$", re.M)


class Demo:
    def __init__(self, tmp_path: Path, rabbit_url: str, vhost: str):
        self.dir = tmp_path / "demo-state"
        self.out = tmp_path / "demo.out"
        self.env = {k: v for k, v in os.environ.items() if not k.startswith(("DONGBO_", "DEMO_"))}
        self.env.update(DEMO_DIR=str(self.dir), DEMO_DOSSIERS="24", DEMO_UNITS="2", DEMO_VHOST=vhost,
                        DEMO_SIM_PORT=str(free_port()), DEMO_S3_PORT=str(free_port()), DEMO_WEB_PORT=str(free_port()),
                        DEMO_TIMEOUT="200",
                        DONGBO_AMQP_URL=services.with_vhost(rabbit_url, "/"))

    def run(self, *args: str, timeout: float = 300) -> str:
        """Runs the demo until its final line, then stops it with Ctrl-C (SIGINT); its whole output."""
        with open(self.out, "wb") as out:
            process = subprocess.Popen([str(ROOT / "scripts" / "demo"), *args], env=self.env, stdout=out,
                                       stderr=subprocess.STDOUT, start_new_session=True)
        try:
            deadline = time.monotonic() + timeout
            while not FINAL.search(self.text()):
                assert process.poll() is None, f"the demo exited {process.returncode}:\n{self.text()}"
                assert time.monotonic() < deadline, f"no final line after {timeout} s:\n{self.text()}"
                time.sleep(0.5)
            process.send_signal(signal.SIGINT)
            process.wait(60)
        finally:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        return self.text()

    def text(self) -> str:
        return self.out.read_text(errors="replace") if self.out.exists() else ""


@pytest.fixture
def demo(tmp_path, rabbit_url):
    vhost = f"dongbo-test-demo-{uuid.uuid4().hex[:8]}"
    yield Demo(tmp_path, rabbit_url, vhost)
    services.delete_vhost(services.with_vhost(rabbit_url, "/"), vhost)


def test_the_demo_shows_progress_then_the_final_line_and_starts_over_with_fresh(demo):
    out = demo.run()
    final = FINAL.search(out)
    assert final, out
    count, state_dir = int(final.group(1)), Path(final.group(3))
    assert count > 0 and state_dir == demo.dir and state_dir.is_absolute()
    progress = [line for line in out.splitlines() if line.startswith("seen ")]
    assert progress and f"synced {count}/{count}" in progress[-1] and "/s" in progress[-1], out
    assert re.search(r"\|  \d+\.H55 \d+/\d+  \d+\.H55 \d+/\d+", progress[-1]), progress[-1]  # per unit
    assert '{"time"' not in out, "JSON logs on the terminal"
    assert "stopped; the state stays in" in out
    logs = (demo.dir / "logs" / "services.log").read_text()
    assert '"logger"' in logs and "fetcher" in logs

    # The settings file works from anywhere: absolute paths, and the demo's own vhost and queue prefix.
    settings = (demo.dir / "env").read_text()
    assert f"DONGBO_DATABASE_URL='sqlite:///{demo.dir}/dongbo.db'" in settings
    assert f"/{demo.env['DEMO_VHOST']}'" in settings and "DONGBO_QUEUE_PREFIX='demo'" in settings
    status = subprocess.run(["bash", "-c", f". {demo.dir}/env && dongbo status --json"], cwd="/",
                            capture_output=True, text=True, timeout=120)
    assert f'"synced": {count}' in status.stdout, status.stdout + status.stderr
    assert not Path("/dongbo.db").exists()

    # A second run carries on with the same state and says so; --fresh starts over.
    out = demo.run()
    assert "reusing the state of the last run" in out and "scripts/demo --fresh" in out and FINAL.search(out)
    out = demo.run("--fresh")
    assert "--fresh: removing" in out and "reusing" not in out and FINAL.search(out)


def test_a_taken_port_stops_the_demo_with_one_line_naming_it(demo):
    with socket.create_server(("127.0.0.1", 0)) as listener:  # someone else's server on that port
        port = listener.getsockname()[1]
        demo.env["DEMO_S3_PORT"] = str(port)
        result = subprocess.run([str(ROOT / "scripts" / "demo")], env=demo.env, capture_output=True, text=True,
                                timeout=300)
    assert result.returncode == 1
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert lines[-1] == (f"dongbo demo: port {port} (DEMO_S3_PORT) is already in use by another program; "
                         "set DEMO_S3_PORT to a free port"), result.stderr
    assert not (demo.dir / "s3").exists(), "nothing started, nothing written"
