"""docker-compose.yml without a Docker engine: it is valid against the compose-spec schema, it
parses, everything it names exists, every Airflow command it runs is one the installed Airflow
CLI accepts, no secret has a default, and the operator's points of issue 14 hold: `.env`
settings are not overridden, each service gets only the secrets it uses, the store's volume is
writable by the tasks, task logs are shared, the task parallelism is capped."""

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
PIPELINE_ENV_EXAMPLE = REPO / "pipeline.env.example"
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


def _volume_target(vol) -> str:
    if not isinstance(vol, str):
        return vol["target"]
    return vol[len(_volume_source(vol)) + 1:].split(":")[0]


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


def _dockerfile_args() -> dict[str, str]:
    return dict(re.findall(r"^ARG (\w+)=(\S*)$", (REPO / "Dockerfile").read_text(), re.M))


def test_everything_the_dockerfile_copies_exists():
    text = (REPO / "Dockerfile").read_text()
    copies = re.findall(r"^COPY\s+(?:--\S+\s+)*(.+)$", text, re.M)
    assert copies
    args = _dockerfile_args()
    for line in copies:
        *sources, _dest = re.sub(r"\$\{(\w+)\}", lambda m: args[m.group(1)], line).split()
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
            # the user writes pipeline.env from its example; it is optional
            assert env_file == {"path": "pipeline.env", "required": False}, (name, env_file)
            assert PIPELINE_ENV_EXAMPLE.is_file()


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


# --- issue 14, point 4 ------------------------------------------------------------------------

AIRFLOW_NEEDS = {  # each secret of .env, and the services that use it (nothing else gets it)
    "POSTGRES_PASSWORD": {"postgres", *AIRFLOW_SERVICES},  # the metadata DB
    "AIRFLOW_FERNET_KEY": {"api-server", "scheduler", "dag-processor", "triggerer"},
    "AIRFLOW_API_SECRET_KEY": {"api-server", "scheduler", "triggerer"},  # log-server tokens
    "AIRFLOW_JWT_SECRET": {"api-server", "scheduler"},  # execution-API tokens (the executor)
    "TELEPORT_AUDIT_LOG_DIR": {"scheduler"},  # the tasks read the audit log
}


def _referenced(svc: dict) -> set[str]:
    """The ${VARIABLES} a service's definition uses."""
    return {m[0] for m in INTERPOLATION.findall(json.dumps(svc))}


def test_the_file_is_valid_against_the_compose_spec_schema():
    checker = Path(sys.executable).with_name("check-jsonschema")
    done = subprocess.run([str(checker), "--builtin-schema", "vendor.compose-spec", str(COMPOSE)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr


def test_pipeline_settings_in_env_files_are_not_overridden(services):
    """`environment:` wins over `env_file:`: it must not set any pipeline setting, or the
    operator's value is silently ignored. The defaults are the image's ENV (which env files
    override), pointing at the volumes the scheduler mounts."""
    for name, svc in services.items():
        fixed = sorted(k for k in svc.get("environment") or {}
                       if k.startswith("DISCOVERY_HISTORY_"))
        assert fixed == [], f"{name} fixes {fixed} in environment:"
    docker = (REPO / "Dockerfile").read_text()
    image_env = dict(re.findall(r"(DISCOVERY_HISTORY_\w+)=(\S+)", docker))
    mounts = {_volume_target(v) for v in services["scheduler"]["volumes"]}
    assert image_env["DISCOVERY_HISTORY_STORE"] in mounts
    assert image_env["DISCOVERY_HISTORY_SOURCE"] in mounts
    example = PIPELINE_ENV_EXAMPLE.read_text()
    assert "DISCOVERY_HISTORY_STORE=" in example and "AIRFLOW_CONN_SMTP_DEFAULT=" in example


def test_each_service_gets_only_the_secrets_it_uses(services):
    for name, svc in services.items():
        env_files = svc.get("env_file") or []
        env_files = [env_files] if isinstance(env_files, str) else env_files
        assert ".env" not in [f if isinstance(f, str) else f["path"] for f in env_files], (
            f"{name} gets all of .env")
    for var, users in AIRFLOW_NEEDS.items():
        got = {name for name, svc in services.items() if var in _referenced(svc)}
        assert got == users, f"${{{var}}} reaches {sorted(got)}, should reach {sorted(users)}"
    # the pipeline's settings and SMTP connection (pipeline.env): the task runner only
    with_pipeline = {name for name, svc in services.items() if svc.get("env_file")}
    assert with_pipeline == {"scheduler"}


def test_the_lake_volume_is_created_owned_by_the_airflow_user(services):
    """A new named volume takes the owner of its mount point in the image: that folder must
    exist there, owned by `airflow`, or the first ingest cannot write the store."""
    [target] = [_volume_target(v) for v in services["scheduler"]["volumes"]
                if _volume_source(v) == "lake"]
    docker = (REPO / "Dockerfile").read_text()
    as_root = docker.split("USER airflow", 1)[0]
    assert re.search(rf"mkdir -p [^\n]*{re.escape(target)}\b", as_root), docker
    assert re.search(rf"chown airflow:\S+ [^\n]*{re.escape(target)}\b", as_root), docker


def test_task_logs_are_one_volume_shared_by_every_airflow_process(compose, services):
    for name in AIRFLOW_SERVICES:
        logs = [v for v in services[name]["volumes"] if v.endswith(":/opt/airflow/logs")]
        assert logs == ["logs:/opt/airflow/logs"], name
    assert "logs" in compose["volumes"]


def test_task_parallelism_is_capped(services):
    value = services["scheduler"]["environment"]["AIRFLOW__CORE__PARALLELISM"]
    m = INTERPOLATION.fullmatch(value)
    default = int(m.group(3)) if m else int(value)
    assert m is None or m.group(2) == ":-"
    assert 1 <= default <= 8  # Airflow's default 32 idle workers, ~144 MB each, on 2 cores


def test_readme_says_compose_v2_is_required():
    assert "Compose v2" in COMPOSE.read_text()
    readme = (REPO / "README.md").read_text()
    assert re.search(r"Docker Compose v2 \(2\.24 or later\)", readme)
