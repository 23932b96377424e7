"""The README's commands work exactly as written, and the README stays a short front door to the docs."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

from harness.services import ROOT


def doc_block(path: str, marker: str) -> str:
    text = (ROOT / path).read_text(encoding="utf-8")
    match = re.search(rf"<!-- {marker} -->\n```bash\n(.*?)```", text, re.S)
    assert match, f"{path} has no block marked {marker}"
    return match.group(1)


def test_the_documented_exchange_runs_verbatim_against_the_simulator(simulator_factory, tmp_path: Path):
    sim = simulator_factory()  # the simulator's defaults, as a new user starts it
    script = doc_block("docs/onestop-api.md", "curl-exchange")
    result = subprocess.run(["bash", "-euo", "pipefail", "-c", script], cwd=tmp_path,
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


def test_the_readme_is_a_front_door_whose_links_resolve():
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    assert len(text.encode("utf-8")) <= 8 * 1024, "settings, deployment and the rest belong in docs/"
    for heading in ("## Set up", "## Hướng dẫn nhanh", "## How it works", "## Layout"):
        assert heading in text
    links = re.findall(r"\]\(([^)#]+)\)", text)
    assert links and all((ROOT / link).exists() for link in links), links
    # Each fact in one place: the settings table lives in docs/settings.md only.
    assert "| setting |" not in text and "| `malformed-dossier`" not in text


def test_every_setting_is_documented_once():
    from shared.settings import PREFIX, Settings

    documented = (ROOT / "docs" / "settings.md").read_text(encoding="utf-8")
    for name in Settings.model_fields:
        assert f"`{PREFIX}{name.upper()}" in documented, f"{PREFIX}{name.upper()} is not in docs/settings.md"
