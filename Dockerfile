# Airflow 3 with discovery-history installed: `docker compose build` (see docker-compose.yml).
# One Airflow version everywhere: this ARG, pyproject.toml's [airflow] extra and the constraints
# file's name and pins (tests/test_install_pins.py keeps them equal).
ARG AIRFLOW_VERSION=3.3.2
ARG PYTHON_VERSION=3.11
FROM apache/airflow:${AIRFLOW_VERSION}-python${PYTHON_VERSION}

ARG AIRFLOW_VERSION
ARG PYTHON_VERSION
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
# The store's volume mount point, owned by the user the tasks run as: Docker copies this
# folder's owner into the `lake` named volume when it is first created (else root owns it and
# the first ingest cannot write).
RUN mkdir -p /data/lake && chown airflow:root /data/lake && chmod 0770 /data/lake

USER airflow
WORKDIR /opt/discovery-history
COPY --chown=airflow:root constraints/airflow-${AIRFLOW_VERSION}-py${PYTHON_VERSION}.txt ./constraints.txt
COPY --chown=airflow:root pyproject.toml README.md ./
COPY --chown=airflow:root pipeline ./pipeline
COPY --chown=airflow:root sql ./sql
# Airflow pinned to the image's version (never up- or downgraded), with the constraints the
# project was tested with: the PostgreSQL drivers (psycopg2, asyncpg) come with [postgres].
RUN pip install --no-cache-dir -c constraints.txt \
      "apache-airflow[postgres]==${AIRFLOW_VERSION}" ".[airflow]"
COPY --chown=airflow:root dags /opt/airflow/dags
WORKDIR /opt/airflow
# Pipeline defaults for this image; pipeline.env (docker-compose.yml) overrides them.
ENV DISCOVERY_HISTORY_STORE=/data/lake \
    DISCOVERY_HISTORY_SOURCE=/teleport/log
