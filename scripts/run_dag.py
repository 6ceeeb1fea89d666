"""Run one of the project's DAGs once, in-process, through Airflow's `dag.test()`.

    python scripts/run_dag.py discovery_ingest --logical-date 2026-05-31T00:00:00Z
    python scripts/run_dag.py discovery_ingest --conf '{"start": "2026-05-01", "end": "2026-05-31"}'

Needs AIRFLOW_HOME (with a migrated metadata DB) and AIRFLOW__CORE__DAGS_FOLDER set, as
`scripts/demo_airflow.sh` does. Retries are switched off for the run (`dag.test()` would sleep
through the real retry delays). Prints one line per task with its state and returned summary;
exits 1 when the run failed.
"""

from __future__ import annotations

import argparse
import json
import sys
import warnings
from datetime import datetime


def _instant(text: str) -> datetime:
    t = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if t.tzinfo is None:
        raise argparse.ArgumentTypeError(f"{text!r} has no timezone (add Z)")
    return t


def _returned(run) -> dict[str, object]:
    from airflow import settings
    from airflow.models.xcom import XComModel
    from sqlalchemy import select

    with settings.Session() as session:
        rows = session.scalars(select(XComModel).where(
            XComModel.dag_id == run.dag_id, XComModel.run_id == run.run_id,
            XComModel.key == "return_value")).all()
        return {x.task_id: XComModel.deserialize_value(x) for x in rows}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("dag_id")
    p.add_argument("--logical-date", type=_instant,
                   help="the run's logical date (its data interval is inferred from it)")
    p.add_argument("--conf", type=json.loads, default=None, help="run conf (JSON object)")
    args = p.parse_args(argv)
    # dag.test() drives the task API through starlette's test client, which warns about it
    warnings.filterwarnings("ignore", message=r"Using `httpx` with `starlette.testclient`")

    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag()
    if bag.import_errors:
        for path, err in bag.import_errors.items():
            print(f"import error in {path}:\n{err}", file=sys.stderr)
        return 1
    dag = bag.dags.get(args.dag_id)
    if dag is None:
        print(f"no DAG {args.dag_id!r} (have: {', '.join(sorted(bag.dags))})", file=sys.stderr)
        return 1
    for t in dag.tasks:
        t.retries = 0
    when = args.logical_date
    run = dag.test(logical_date=when, run_after=when, run_conf=args.conf)
    values = _returned(run)
    label = when.isoformat() if when else json.dumps(args.conf or {})
    print(f"{args.dag_id} [{label}]: {_state(run.state)}")
    for ti in sorted(run.get_task_instances(), key=lambda ti: ti.task_id):
        value = values.get(ti.task_id)
        shown = json.dumps(value) if value is not None else ""
        print(f"  {ti.task_id:<20} {_state(ti.state):<8} {shown}")
    return 0 if _state(run.state) == "success" else 1


def _state(state) -> str:
    return str(getattr(state, "value", state))


if __name__ == "__main__":
    sys.exit(main())
