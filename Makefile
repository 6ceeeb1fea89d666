# discovery-history — everything a newcomer needs: `make demo`, `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
# Airflow's dependencies at the versions tested (see the file's header for its origin);
# pyproject.toml pins the same Airflow version (tests/test_install_pins.py)
CONSTRAINTS ?= constraints/airflow-3.3.2-py3.11.txt
STAMP  := $(VENV)/.installed-$(shell cat pyproject.toml $(CONSTRAINTS) | cksum | cut -d' ' -f1)
DEMO   ?= demo
# The demo fleet covers 2026-05-01 .. 2026-05-31 (fixed, reproducible); report its last day.
DEMO_FROM ?= 2026-05-30T00:00:00Z
DEMO_TO   ?= 2026-05-31T00:00:00Z

.PHONY: install test test-slow demo demo-cli airflow lint bench clean screenshot notebook

install: $(STAMP)

$(STAMP): pyproject.toml $(CONSTRAINTS)
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@$(BIN)/python -c 'import sys; v = "%d.%d" % sys.version_info[:2]; sys.exit(0 if "-py" + v + "." in "$(CONSTRAINTS)" else "make install: $(CONSTRAINTS) is for another Python than this venv'"'"'s " + v + " (set CONSTRAINTS=... or PYTHON=python3.11)")'
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[airflow,report,s3,aws,spark,dev]' -c $(CONSTRAINTS)
	@rm -f $(VENV)/.installed-*
	@touch $@

test: install
	$(BIN)/python -m pytest -q -m "not slow"

test-slow: install
	$(BIN)/python -m pytest -q -m slow

lint: install
	$(BIN)/ruff check pipeline tests dags bench notebooks

demo: install  # the main job through real Airflow (dag.test), then the reports
	DEMO=$(DEMO) scripts/demo_airflow.sh
	$(BIN)/discovery-history --store $(DEMO)/lake report --from $(DEMO_FROM) --to $(DEMO_TO) --trend-days 7 --out $(DEMO)/report
	@echo "history report: $(DEMO)/report/index.html"

demo-cli: install  # the same data through the CLI only (no Airflow)
	rm -rf $(DEMO)
	$(BIN)/discovery-history demo generate $(DEMO)/fleet --end $(DEMO_TO)
	$(BIN)/discovery-history --store $(DEMO)/lake ingest events $(DEMO)/fleet/auth
	$(BIN)/discovery-history --store $(DEMO)/lake ingest nodes $(DEMO)/fleet/nodes.json --at $(DEMO_TO)
	$(BIN)/discovery-history --store $(DEMO)/lake ingest user-tasks $(DEMO)/fleet/user_tasks.json --at $(DEMO_TO)
	$(BIN)/discovery-history --store $(DEMO)/lake nodes --from $(DEMO_FROM) --to $(DEMO_TO) --failures-only --width 160 | head -n 25

airflow: install  # airflow standalone with this project's DAGs (UI on http://localhost:8080)
	scripts/airflow_standalone.sh

screenshot: demo  # regenerates docs/report.png from the demo report
	chromium --headless --no-sandbox --disable-gpu --disable-quic --no-first-run --disable-background-networking --disable-component-update --disable-sync --user-data-dir=$$(mktemp -d) --screenshot=docs/report.png --window-size=1280,2000 file://$(CURDIR)/$(DEMO)/report/index.html

notebook: demo
	$(BIN)/marimo edit notebooks/analyst.py -- --store $(DEMO)/lake

bench: install
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) $(DEMO) lake .airflow .pytest_cache .ruff_cache
