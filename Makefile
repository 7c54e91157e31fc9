# The two commands in README.md: `make demo` and `make test`. Both do all set-up first.
VENV ?= .venv
PYTEST_ARGS ?=

.PHONY: setup ui-deps ray-setup demo lint test test-fast test-ray dev mlflow-ui

setup:
	@bash scripts/setup.sh

# The UI tests' headless Chromium (apt) and Playwright. Where apt is not available the UI tests skip and
# say why (CI sets FORGE_REQUIRE_UI=1, which turns that skip into a failure).
ui-deps: setup
	@bash scripts/install_ui_deps.sh || echo "[setup] UI test dependencies not installed: tests marked 'ui' will skip"

# The optional Ray engine (forge serve --ray, runtime.engine: ray). Without it the tests marked 'ray' skip and say
# why (CI sets FORGE_REQUIRE_RAY=1, which turns that skip into a failure).
ray-setup: setup
	@$(VENV)/bin/python -c "import ray, dagster_ray; assert ray.__version__ == '2.60.0'" 2>/dev/null \
	  || bash -c '. scripts/step.sh && step "installing the Ray extra" $(VENV)/bin/pip install -q -e ".[dev,ray]"'

demo: setup
	$(VENV)/bin/forge demo

# Lint, format and type checks first: they take seconds to minutes, the suite takes longer.
lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy forge_pipeline

test: setup ui-deps lint
	HF_HUB_OFFLINE=1 $(VENV)/bin/python -m pytest $(PYTEST_ARGS)

test-ray: ray-setup
	HF_HUB_OFFLINE=1 $(VENV)/bin/python -m pytest -m ray $(PYTEST_ARGS)

test-fast: setup
	$(VENV)/bin/python -m pytest -m "not slow" $(PYTEST_ARGS)

# Dagster's run and event storage under the data root, with Forge's dagster.yaml.
dev: setup
	mkdir -p .forge_data/dagster_home && cp dagster.yaml .forge_data/dagster_home/
	DAGSTER_HOME=$(CURDIR)/.forge_data/dagster_home $(VENV)/bin/dagster dev -w workspace.yaml

# MLflow's UI over Forge's store, without MLflow's usage telemetry (Forge's own processes disable it on import).
mlflow-ui: setup
	MLFLOW_DISABLE_TELEMETRY=true $(VENV)/bin/mlflow ui --backend-store-uri sqlite:///$(CURDIR)/.forge_data/mlflow/mlflow.db -h 127.0.0.1 -p 5000
