"""Print the pins of `apache-airflow[postgres]` and everything it depends on, as installed in
this interpreter's environment: how `constraints/airflow-<version>-py<python>.txt` was made
when Airflow's published constraints file could not be fetched (see that file's header).

    .venv/bin/python scripts/airflow_constraints.py > constraints/airflow-3.3.2-py3.11.txt.new

Run it in an environment where the project and all its extras were resolved together with the
pinned Airflow (`make install` without constraints), so the pins also fit the project's other
dependencies. Only the closure of apache-airflow[postgres] is printed (walking Requires-Dist
with its environment markers, extras only where requested): the published file pins Airflow's
world too, not the project's own dependencies.
"""

from __future__ import annotations

import sys
from importlib import metadata

from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name


def closure(root: str, extras: set[str]) -> dict[str, str]:
    """{distribution name: installed version} of `root[extras]` and its dependencies."""
    seen: dict[str, str] = {}
    todo: list[tuple[str, frozenset[str]]] = [(root, frozenset(extras))]
    done: set[tuple[str, frozenset[str]]] = set()
    while todo:
        name, wanted = todo.pop()
        key = (canonicalize_name(name), wanted)
        if key in done:
            continue
        done.add(key)
        try:
            dist = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            sys.exit(f"{name} is required but not installed: install the project first")
        seen[dist.metadata["Name"]] = dist.version
        for line in dist.requires or []:
            req = Requirement(line)
            envs = [{**default_environment(), "extra": e} for e in ("", *wanted)]
            if req.marker is None or any(req.marker.evaluate(env) for env in envs):
                todo.append((req.name, frozenset(req.extras)))
    return seen


def main() -> None:
    pins = closure("apache-airflow", {"postgres"})
    for name in sorted(pins, key=str.lower):
        print(f"{name}=={pins[name]}")


if __name__ == "__main__":
    main()
