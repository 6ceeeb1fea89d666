"""docker-compose.yml without a Docker engine: it parses, everything it names exists, every
Airflow command it runs is one the installed Airflow CLI accepts, and no secret has a default."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
COMPOSE = REPO / "docker-compose.yml"
ENV_EXAMPLE = REPO / ".env.example"
AIRFLOW_SERVICES = {"init", "api-server", "scheduler", "dag-processor", "triggerer"}
SECRET_WORDS = re.compile(r"PASSWORD|SECRET|FERNET|TOKEN|_KEY\b|JWT", re.I)
INTERPOLATION = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?])([^}]*))?\}")


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load(COMPOSE.read_text())


@pytest.fixture(scope="module")
def services(compose) -> dict:
    return compose["services"]


def _example_vars() -> dict[str, str]:
    out = {}
    for line in ENV_EXAMPLE.read_text().splitlines():
        m = re.match(r"^\s*#?\s*([A-Z][A-Z0-9_]*)=(.*)$", line)
        if m:
            out[m.group(1)] = m.group(2)
    return out


def _volume_source(vol) -> str:
    """The source of a short-syntax volume (`src:dst[:mode]`, src may be `${VAR:?msg}`)."""
    if not isinstance(vol, str):
        return vol["source"]
    if vol.startswith("${"):
        return vol[: vol.index("}") + 1]
    return vol.split(":", 1)[0]


def test_compose_parses_with_every_service(services):
    assert {"postgres", *AIRFLOW_SERVICES} <= set(services)
    for name in AIRFLOW_SERVICES:
        env = services[name]["environment"]
        assert env["AIRFLOW__CORE__EXECUTOR"] == "LocalExecutor"
        assert env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"].startswith("postgresql+psycopg2://")
        assert "@postgres:5432/" in env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"]
    assert services["postgres"]["image"].startswith("postgres:")


def test_build_context_and_dockerfile_exist(services):
    for name in AIRFLOW_SERVICES:
        build = services[name]["build"]
        context = REPO / build["context"]
        assert context.is_dir(), name
        assert (context / build.get("dockerfile", "Dockerfile")).is_file(), name


def test_everything_the_dockerfile_copies_exists():
    copies = re.findall(r"^COPY\s+(?:--\S+\s+)*(.+)$", (REPO / "Dockerfile").read_text(), re.M)
    assert copies
    for line in copies:
        *sources, _dest = line.split()
        for src in sources:
            assert (REPO / src).exists(), f"Dockerfile copies {src}, which does not exist"


def test_every_mounted_path_exists_or_comes_from_env(compose, services):
    named = set(compose.get("volumes") or {})
    example = _example_vars()
    for name, svc in services.items():
        for vol in svc.get("volumes", []):
            source = _volume_source(vol)
            if m := INTERPOLATION.fullmatch(source):
                assert m.group(1) in example, f"{name}: {source} is not in .env.example"
                assert m.group(2) == ":?", f"{name}: {source} must be required, not defaulted"
            elif source.startswith((".", "/")):
                assert (REPO / source).exists(), f"{name} mounts {source}, which does not exist"
            else:
                assert source in named, f"{name}: volume {source} is not declared"
        env_files = svc.get("env_file") or []
        for env_file in [env_files] if isinstance(env_files, str) else env_files:
            assert env_file == ".env" and ENV_EXAMPLE.is_file()  # the user writes .env


def test_every_airflow_command_is_one_the_installed_cli_accepts(services, tmp_path):
    commands = {name: services[name]["command"] for name in sorted(AIRFLOW_SERVICES)}
    probe = ("import json, sys\n"
             "from airflow.cli.cli_parser import get_parser\n"
             "parser = get_parser()\n"
             "for name, argv in json.loads(sys.argv[1]).items():\n"
             "    parser.parse_args(argv)\n"
             "print('ok')\n")
    env = {**os.environ, "AIRFLOW_HOME": str(tmp_path),
           "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{tmp_path}/airflow.db"}
    done = subprocess.run([sys.executable, "-c", probe, json.dumps(commands)], env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and done.stdout.strip().endswith("ok"), done.stderr[-2000:]
    assert commands["init"] == ["db", "migrate"]


def test_no_secret_has_a_default_or_a_plaintext_value(services):
    text = COMPOSE.read_text()
    for var, op, _rest in INTERPOLATION.findall(text):
        if SECRET_WORDS.search(var):
            assert op == ":?", f"${{{var}}} must be required (:?), not defaulted"
    for name, svc in services.items():
        for key, value in (svc.get("environment") or {}).items():
            value = str(value)
            if SECRET_WORDS.search(key) or "://" in value and "@" in value:
                refs = INTERPOLATION.findall(value)
                assert refs and all(op == ":?" for _, op, _ in refs), f"{name}: {key}={value}"
                literal = INTERPOLATION.sub("", value)
                assert not re.search(r":[^/@]+@", literal), f"{name}: {key} has a literal password"


def test_env_example_lists_every_required_variable_with_no_value():
    text = COMPOSE.read_text()
    required = {var for var, op, _ in INTERPOLATION.findall(text) if op == ":?"}
    example = _example_vars()
    assert required <= set(example), sorted(required - set(example))
    for var in required:
        if SECRET_WORDS.search(var):
            assert example[var] == "", f".env.example must not carry a value for {var}"
