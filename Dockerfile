# Airflow 3 with discovery-history installed: `docker compose build` (see docker-compose.yml).
ARG AIRFLOW_VERSION=3.3.2
ARG PYTHON_VERSION=3.11
FROM apache/airflow:${AIRFLOW_VERSION}-python${PYTHON_VERSION}

ARG AIRFLOW_VERSION
# Optional: a Teleport version (e.g. 18.1.0) to put `tctl` in the image for the snapshot tasks.
# Without it, configure DISCOVERY_HISTORY_NODES_FILE / _USER_TASKS_FILE or your own command.
ARG TELEPORT_VERSION=""

USER root
RUN if [ -n "${TELEPORT_VERSION}" ]; then \
      arch="$(dpkg --print-architecture)" \
      && curl -fsSL "https://cdn.teleport.dev/teleport-v${TELEPORT_VERSION}-linux-${arch}-bin.tar.gz" \
         | tar -xz -C /tmp \
      && install -m 0755 /tmp/teleport/tctl /usr/local/bin/tctl \
      && rm -rf /tmp/teleport; \
    fi

USER airflow
WORKDIR /opt/discovery-history
COPY --chown=airflow:root pyproject.toml README.md ./
COPY --chown=airflow:root pipeline ./pipeline
COPY --chown=airflow:root sql ./sql
# Pin Airflow to the image's version so installing the project never up- or downgrades it.
RUN pip install --no-cache-dir "apache-airflow==${AIRFLOW_VERSION}" ".[airflow]"
COPY --chown=airflow:root dags /opt/airflow/dags
WORKDIR /opt/airflow
