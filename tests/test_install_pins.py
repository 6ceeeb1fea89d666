"""One Airflow version everywhere, installed the way Airflow's project documents it: the
[postgres] extra (its drivers) under a constraints file kept in the repo, used by `make
install` (so CI) and the Dockerfile; and this environment is what that file says."""

from __future__ import annotations

import re
import tomllib
from importlib import metadata
from pathlib import Path

import pytest
from packaging.utils import canonicalize_name

REPO = Path(__file__).resolve().parents[1]


def _airflow_requirement() -> str:
    extras = tomllib.loads((REPO / "pyproject.toml").read_text())["project"][
        "optional-dependencies"]
    [req] = [r for r in extras["airflow"] if r.startswith("apache-airflow")]
    return req


def _pinned_version() -> str:
    m = re.fullmatch(r"apache-airflow\[postgres\]==(\d+\.\d+\.\d+)", _airflow_requirement())
    assert m, ("pyproject's [airflow] extra must pin apache-airflow[postgres]==X.Y.Z, not "
               f"{_airflow_requirement()!r}")
    return m.group(1)


def _dockerfile_args() -> dict[str, str]:
    return dict(re.findall(r"^ARG (\w+)=(\S*)$", (REPO / "Dockerfile").read_text(), re.M))


def _constraints_file() -> Path:
    m = re.search(r"^CONSTRAINTS \?= (\S+)$", (REPO / "Makefile").read_text(), re.M)
    assert m, "the Makefile names the constraints file (CONSTRAINTS ?= ...)"
    return REPO / m.group(1)


def _pins(path: Path) -> dict[str, str]:
    pins = {}
    for line in path.read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, version = line.split("==")
            pins[canonicalize_name(name)] = version
    return pins


def test_one_airflow_version_in_pyproject_dockerfile_makefile_and_constraints():
    version = _pinned_version()
    args = _dockerfile_args()
    assert args["AIRFLOW_VERSION"] == version
    constraints = _constraints_file()
    assert constraints.name == f"airflow-{version}-py{args['PYTHON_VERSION']}.txt"
    assert constraints.is_file()
    pins = _pins(constraints)
    assert pins["apache-airflow"] == pins["apache-airflow-core"] == version
    # the metadata DB drivers Airflow 3 opens (sync psycopg2, async asyncpg) are pinned
    assert {"apache-airflow-providers-postgres", "psycopg2-binary", "asyncpg"} <= set(pins)
    header = constraints.read_text().split("\n\n", 1)[0]
    assert "ORIGIN:" in header  # says where the pins came from


def test_make_install_and_the_dockerfile_install_under_the_constraints():
    makefile = (REPO / "Makefile").read_text()
    assert re.search(r"pip install [^\n]*-e '\.\[[^\]]*airflow[^\]]*\]' -c \$\(CONSTRAINTS\)",
                     makefile)
    assert "$(STAMP): pyproject.toml $(CONSTRAINTS)" in makefile  # a new file reinstalls
    docker = (REPO / "Dockerfile").read_text()
    assert re.search(r"^FROM apache/airflow:\$\{AIRFLOW_VERSION\}-python\$\{PYTHON_VERSION\}$",
                     docker, re.M)
    assert ("COPY --chown=airflow:root constraints/airflow-${AIRFLOW_VERSION}-py"
            "${PYTHON_VERSION}.txt ./constraints.txt") in docker
    install = re.search(r"^RUN pip install .*?(?<!\\)$", docker, re.M | re.S).group(0)
    assert "-c constraints.txt" in install
    assert '"apache-airflow[postgres]==${AIRFLOW_VERSION}"' in install
    ci = (REPO / ".ci" / "run").read_text()
    assert "make test" in ci and "postgresql" in ci  # the metadata-DB test's server


def test_this_environment_is_what_the_constraints_say():
    """`make install` honoured the file: every pinned package that is installed has the pinned
    version, and the PostgreSQL drivers import."""
    pins = _pins(_constraints_file())
    wrong = {}
    for name, version in pins.items():
        try:
            installed = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
        if installed != version:
            wrong[name] = (installed, version)
    assert wrong == {}, f"installed vs pinned: {wrong} (run make install)"
    assert metadata.version("apache-airflow") == _pinned_version()
    for module in ("psycopg2", "asyncpg"):
        pytest.importorskip(module, reason=f"{module} comes with apache-airflow[postgres]")
