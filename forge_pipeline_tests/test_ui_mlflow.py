"""MLflow's UI over the tracking store that Forge's trainer writes: two real LoRA runs, compared in a browser."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from forge_pipeline_tests.ui_support import (
    VENV_BIN,
    base_env,
    chromium_page,
    free_port,
    running_server,
    save_screenshot,
)

pytestmark = [pytest.mark.ui, pytest.mark.slow]

LEARNING_RATES = (1e-4, 1e-3)


def _train_two_runs(tmp_path: Path) -> tuple[str, list]:
    """Two trainer runs that differ only in learning rate, on a tiny dataset and the tiny demo Llama."""
    import mlflow
    from mlflow.tracking import MlflowClient

    from forge_pipeline.train.config import TinyModelSettings, TrainSettings
    from forge_pipeline.train.sft import corpus_texts, train_lora
    from forge_pipeline.train.testing import write_tiny_dataset_version
    from forge_pipeline.train.tiny_model import build_tiny_llama

    tracking_uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    # MLflow's default artifact root is relative to the working directory; keep artifacts in the tmp dir.
    mlflow.set_tracking_uri(tracking_uri)
    mlflow.create_experiment("forge", artifact_location=(tmp_path / "artifacts").as_uri())

    version = write_tiny_dataset_version(tmp_path / "dataset", n=16, n_validation=4, save_hf=False)
    dataset_dir = Path(version["path"])
    tiny = TinyModelSettings(vocab_size=512, hidden_size=64, intermediate_size=128, num_attention_heads=2,
                             num_key_value_heads=1, max_position_embeddings=256)
    base = build_tiny_llama(corpus_texts(dataset_dir), tmp_path / "base", tiny)
    for lr in LEARNING_RATES:
        hp = TrainSettings(learning_rate=lr, max_steps=4, per_device_train_batch_size=4,
                           gradient_accumulation_steps=1, logging_steps=1, max_length=128, tiny_model=tiny)
        train_lora(dataset_dir, base, tmp_path / f"run-lr{lr}", hp, tracking_uri, experiment="forge",
                   dataset_version=version["version_id"], base_model_name="tiny-demo", is_demo_model=True)
    client = MlflowClient(tracking_uri)
    experiment = client.get_experiment_by_name("forge")
    runs = client.search_runs([experiment.experiment_id])
    return experiment.experiment_id, runs


def _row_cells(page, label: str) -> list[str]:
    """The cells of the compare view's table row whose first cell is exactly `label` (parameters, run ids)."""
    page.locator("tr").filter(has_text=label).first.wait_for(timeout=30_000)
    for row in page.locator("tr").all():
        cells = [c.strip() for c in row.locator("th, td").all_inner_texts()]
        if cells and cells[0].rstrip(":") == label:
            return cells
    raise AssertionError(f"the compare view has no row {label!r}")


# The metrics part of the compare view is two virtualized grids side by side (names | values per run);
# a value belongs to the name whose cell sits at the same `top`.
_METRIC_VALUES_JS = """(label) => {
  const link = [...document.querySelectorAll('a[title="Plot chart"]')].find(e => e.textContent.trim() === label);
  if (!link) return null;
  const top = link.parentElement.style.top;
  const grids = [...document.querySelectorAll('.ReactVirtualized__Grid')];
  const values = grids[grids.indexOf(link.closest('.ReactVirtualized__Grid')) + 1];
  if (!values) return null;
  return [...values.querySelectorAll('.ReactVirtualized__Grid__innerScrollContainer > div')]
    .filter(d => d.style.top === top)
    .sort((a, b) => parseFloat(a.style.left) - parseFloat(b.style.left))
    .map(d => d.textContent.trim());
}"""


def _metric_cells(page, label: str) -> list[str]:
    page.locator('a[title="Plot chart"]').filter(has_text=label).first.wait_for(state="attached", timeout=30_000)
    cells = page.evaluate(_METRIC_VALUES_JS, label)
    assert cells, f"the compare view shows no metric row {label!r}"
    return cells


def test_mlflow_compare_view_shows_params_and_loss_of_two_training_runs(tmp_path):
    from mlflow.tracking import MlflowClient

    experiment_id, runs = _train_two_runs(tmp_path)
    assert len(runs) == 2 and {r.info.status for r in runs} == {"FINISHED"}
    tracking_uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(tracking_uri)
    for run in runs:
        history = client.get_metric_history(run.info.run_id, "loss")
        assert len(history) >= 2, f"run {run.info.run_name} logged {len(history)} step-wise loss values"

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    command = [str(VENV_BIN / "mlflow"), "server", "--backend-store-uri", tracking_uri,
               "--default-artifact-root", (tmp_path / "artifacts").as_uri(),
               "--host", "127.0.0.1", "--port", str(port), "--workers", "1"]
    with running_server("mlflow server", command, env=base_env(), cwd=tmp_path, log_path=tmp_path / "mlflow.log",
                        ready_url=f"{url}/health", timeout_s=180), chromium_page() as page:
        page.goto(f"{url}/#/experiments/{experiment_id}/runs")
        # MLflow 3 opens GenAI views by default; training runs live under "Model training".
        page.get_by_text("Model training", exact=True).first.click()
        page.goto(f"{url}/#/experiments/{experiment_id}/runs")
        for run in runs:
            page.get_by_role("row").filter(has_text=run.info.run_name).get_by_role("checkbox").first.check()
        save_screenshot(page, tmp_path, "mlflow_runs")
        page.get_by_role("button", name="Compare").click()
        page.get_by_text("Comparing 2 Runs").wait_for()

        # Columns follow the order of the run-id row; check each run's own values in its own column.
        column_of = {run_id: n for n, run_id in enumerate(_row_cells(page, "Run ID")[1:])}
        assert set(column_of) == {r.info.run_id for r in runs}
        param_cells = _row_cells(page, "learning_rate")[1:]
        loss_cells = _metric_cells(page, "loss")
        assert len(loss_cells) == 2, loss_cells
        for run in runs:
            column = column_of[run.info.run_id]
            assert param_cells[column] == run.data.params["learning_rate"], (param_cells, run.data.params)
            # The UI rounds to 4 significant digits.
            assert float(loss_cells[column]) == pytest.approx(run.data.metrics["loss"], rel=1e-3), loss_cells
        assert {r.data.params["learning_rate"] for r in runs} == {str(lr) for lr in LEARNING_RATES}
        page.evaluate("window.scrollTo(0, 0)")
        save_screenshot(page, tmp_path, "mlflow_compare")

        # The metric's own page plots the step-wise loss of both runs.
        page.locator('a[title="Plot chart"]').filter(has_text=re.compile(r"^loss$")).first.click()
        for run in runs:
            page.get_by_text(run.info.run_name).first.wait_for()
        page.wait_for_timeout(1500)  # the plot animates in
        save_screenshot(page, tmp_path, "mlflow_loss_curves", readme_name="mlflow_compare_loss.png")
