#!/usr/bin/env bash
# `make demo` through Airflow: generate the demo fleet, run the ingest DAG over the demo period
# with dag.test() (three hourly intervals at the end, then a manual run whose conf window covers
# all 30 days: the backfill equivalent), then the report and maintenance DAGs; print where the
# report landed and the failures table.
#
#   scripts/demo_airflow.sh            # uses .venv, AIRFLOW_HOME=.airflow, DEMO=demo
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
BIN=${BIN:-$ROOT/.venv/bin}
DEMO=${DEMO:-demo}
case $DEMO in /*) DEMO_DIR=$DEMO ;; *) DEMO_DIR=$ROOT/$DEMO ;; esac

# A project-local Airflow: SQLite metadata DB, no examples, this repo's DAGs.
export AIRFLOW_HOME=${AIRFLOW_HOME:-$ROOT/.airflow}
export AIRFLOW__CORE__LOAD_EXAMPLES=False
export AIRFLOW__CORE__DAGS_FOLDER=$ROOT/dags
export AIRFLOW__DATABASE__SQL_ALCHEMY_CONN=sqlite:///$AIRFLOW_HOME/airflow.db
export AIRFLOW__LOGGING__LOGGING_LEVEL=${AIRFLOW__LOGGING__LOGGING_LEVEL:-WARNING}

# The pipeline's settings (pipeline/schedule/config.py). The demo's snapshots are files that stand for
# the fleet's state at its end (2026-05-31), so the snapshot age limit is off.
export DISCOVERY_HISTORY_STORE=$DEMO_DIR/lake
export DISCOVERY_HISTORY_SOURCE_KIND=filelog
export DISCOVERY_HISTORY_SOURCE=$DEMO_DIR/fleet/auth
export DISCOVERY_HISTORY_NODES_FILE=$DEMO_DIR/fleet/nodes.json
export DISCOVERY_HISTORY_USER_TASKS_FILE=$DEMO_DIR/fleet/user_tasks.json
export DISCOVERY_HISTORY_SNAPSHOT_MAX_LAG=0

run_dag() { "$BIN/python" scripts/run_dag.py "$@"; }

rm -rf "$DEMO_DIR"
mkdir -p "$AIRFLOW_HOME"
echo "== generate the demo fleet (2026-05-01 .. 2026-05-31) into $DEMO_DIR/fleet"
"$BIN/discovery-history" demo generate "$DEMO_DIR/fleet" --end 2026-05-31T00:00:00Z

echo "== airflow db migrate ($AIRFLOW_HOME)"
"$BIN/airflow" db migrate >"$AIRFLOW_HOME/db-migrate.log" 2>&1 \
  || { cat "$AIRFLOW_HOME/db-migrate.log"; exit 1; }

echo "== discovery_ingest: the last three hourly intervals (each reads [start - 15m, end))"
for at in 2026-05-30T22:00:00Z 2026-05-30T23:00:00Z 2026-05-31T00:00:00Z; do
  run_dag discovery_ingest --logical-date "$at"
done

echo "== discovery_ingest: a manual run over the whole period (the backfill equivalent)"
run_dag discovery_ingest --conf '{"start": "2026-05-01T00:00:00Z", "end": "2026-05-31T00:00:00Z"}'

echo "== discovery_report: the daily run of 2026-05-31 (reports 2026-05-30)"
run_dag discovery_report --logical-date 2026-05-31T00:30:00Z

echo "== discovery_maintenance: compact, retention (off), verify"
run_dag discovery_maintenance --logical-date 2026-05-31T03:00:00Z

REPORT=$DEMO_DIR/lake/reports/2026-05-30
echo
echo "== the report landed in $REPORT:"
ls -l "$REPORT"
echo
echo "== failures of 2026-05-30 (discovery-history nodes --failures-only, first 25 lines)"
"$BIN/discovery-history" --store "$DEMO_DIR/lake" nodes --from 2026-05-30T00:00:00Z \
  --to 2026-05-31T00:00:00Z --failures-only --width 160 | head -n 25
