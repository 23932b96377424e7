"""The README's commands work exactly as written."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

from harness.services import ROOT


def readme_block(marker: str) -> str:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    match = re.search(rf"<!-- {marker} -->\n```bash\n(.*?)```", text, re.S)
    assert match, f"README has no block marked {marker}"
    return match.group(1)


def test_the_documented_exchange_runs_verbatim_against_the_simulator(simulator_factory, tmp_path: Path):
    sim = simulator_factory()  # the simulator's defaults, as a new user starts it
    result = subprocess.run(["bash", "-euo", "pipefail", "-c", readme_block("curl-exchange")], cwd=tmp_path,
                            env={"PATH": "/usr/bin:/bin", "BASE": sim.api_url.rstrip("/")},
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert '"status":200' in result.stdout.replace(" ", "") and "Cập nhật thành công" in result.stdout
    assert "is no longer returned" in result.stdout, result.stdout
    assert "still returned" not in result.stdout


def test_the_set_up_commands_exist_as_written():
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    assert "scripts/test" in text and (ROOT / "scripts" / "test").stat().st_mode & 0o111
    assert (ROOT / "scripts" / "demo").stat().st_mode & 0o111
    ci = (ROOT / ".ci" / "run").read_text()
    assert "scripts/test" in ci
