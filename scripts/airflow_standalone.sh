#!/usr/bin/env bash
# `make airflow`: Airflow's UI and scheduler for this project's DAGs (`airflow standalone`),
# with a project-local AIRFLOW_HOME (.airflow/, SQLite). Settings default to the demo data
# (`make demo` first); override any DISCOVERY_HISTORY_* variable in the environment.
# Open http://localhost:8080; the admin password is printed by standalone and kept in
# $AIRFLOW_HOME/simple_auth_manager_passwords.json.generated.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
BIN=${BIN:-$ROOT/.venv/bin}

export PATH=$BIN:$PATH  # standalone starts its components as `airflow ...`
export AIRFLOW_HOME=${AIRFLOW_HOME:-$ROOT/.airflow}
export AIRFLOW__CORE__LOAD_EXAMPLES=False
export AIRFLOW__CORE__DAGS_FOLDER=$ROOT/dags
export AIRFLOW__DATABASE__SQL_ALCHEMY_CONN=sqlite:///$AIRFLOW_HOME/airflow.db

export DISCOVERY_HISTORY_STORE=${DISCOVERY_HISTORY_STORE:-$ROOT/demo/lake}
export DISCOVERY_HISTORY_SOURCE=${DISCOVERY_HISTORY_SOURCE:-$ROOT/demo/fleet/auth}
export DISCOVERY_HISTORY_NODES_FILE=${DISCOVERY_HISTORY_NODES_FILE:-$ROOT/demo/fleet/nodes.json}
export DISCOVERY_HISTORY_USER_TASKS_FILE=${DISCOVERY_HISTORY_USER_TASKS_FILE:-$ROOT/demo/fleet/user_tasks.json}

mkdir -p "$AIRFLOW_HOME"
echo "AIRFLOW_HOME=$AIRFLOW_HOME  DAGs: $AIRFLOW__CORE__DAGS_FOLDER  store: $DISCOVERY_HISTORY_STORE"
exec "$BIN/airflow" standalone
