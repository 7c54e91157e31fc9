"""The Dagster UI as a person uses it: `dagster dev` on the repo's workspace.yaml, driven in headless Chromium.

Materialize the whole Forge chain with "Materialize all", read an asset's metadata, and watch the
`new_interactions_sensor` request a run when an interaction file appears.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest

from forge_pipeline.settings import SAMPLE_DATA
from forge_pipeline_tests.ui_support import (
    REPO_ROOT,
    chromium_page,
    dagster_dev,
    dagster_runs,
    graphql,
    save_screenshot,
    wait_until,
)

pytestmark = [pytest.mark.ui, pytest.mark.slow]

LOCATION = "forge"
REPOSITORY = "__repository__"
TERMINAL = {"SUCCESS", "FAILURE", "CANCELED"}
CHAIN_TIMEOUT_S = 20 * 60  # training and GGUF conversion run on CPU
DATA_RUN_TIMEOUT_S = 10 * 60


def _dismiss_community_modal(page) -> None:
    """A fresh browser profile gets Dagster's newsletter dialog over the page, whenever the page has loaded far
    enough to show it (on a busy machine, after the test's first clicks): Playwright's locator handler skips it
    before any action it would block."""
    page.add_locator_handler(page.get_by_role("button", name="Skip"), lambda skip: skip.click())


def _run_failure_details(url: str, run_id: str) -> str:
    data = graphql(
        url,
        """query($runId: ID!) { logsForRun(runId: $runId) { ... on EventConnection { events {
        __typename ... on ExecutionStepFailureEvent { stepKey error { message causes { message } } } } } } }""",
        {"runId": run_id},
    )
    events = data["logsForRun"].get("events", [])
    # The step error only says "error while executing op"; its causes carry the asset's own message.
    return "\n".join(
        f"{e['stepKey']}: " + " <- ".join(m["message"].strip()[:1500] for m in [e["error"], *e["error"]["causes"]])
        for e in events
        if e["__typename"] == "ExecutionStepFailureEvent"
    )


def _wait_for_run(url: str, run_id: str, timeout_s: float) -> None:
    def status():
        runs = {r["runId"]: r for r in dagster_runs(url)}
        value = runs[run_id]["status"]
        return value if value in TERMINAL else None

    final = wait_until(status, timeout_s=timeout_s, interval_s=5.0, what=f"run {run_id} to finish")
    assert final == "SUCCESS", f"run {run_id} ended {final}:\n{_run_failure_details(url, run_id)}"


def _asset_keys(url: str) -> list[str]:
    data = graphql(url, "{ assetNodes { assetKey { path } } }")
    return sorted("/".join(n["assetKey"]["path"]) for n in data["assetNodes"])


def _latest_metadata(url: str, asset: str) -> list[dict]:
    data = graphql(
        url,
        """query($key: AssetKeyInput!) { assetOrError(assetKey: $key) { ... on Asset {
        assetMaterializations(limit: 1) { metadataEntries { label __typename
            ... on MarkdownMetadataEntry { mdStr } ... on TextMetadataEntry { text } } } } } }""",
        {"key": {"path": asset.split("/")}},
    )
    materializations = data["assetOrError"]["assetMaterializations"]
    assert materializations, f"{asset} has no materialization"
    return materializations[0]["metadataEntries"]


def _check_metadata_shown(page, url: str, asset: str, tmp_path: Path) -> None:
    """Every metadata label of the latest materialization is on the asset page; Markdown tables render as
    tables and embedded plots as loaded images (long Markdown opens in a dialog, as a person would see it)."""
    entries = _latest_metadata(url, asset)
    assert entries, f"{asset}'s materialization carries no metadata"
    page.goto(f"{url}/assets/{asset}")
    page.get_by_text("Metadata", exact=True).first.wait_for()
    for entry in entries:
        label = entry["label"]
        if label.startswith("dagster/"):
            continue  # system entries (row counts, code versions) are shown outside the metadata table
        row = page.get_by_role("row").filter(has=page.get_by_text(label, exact=True)).first
        row.wait_for(timeout=15_000)
        md = entry.get("mdStr") or ""
        if entry["__typename"] != "MarkdownMetadataEntry":
            continue
        show = row.get_by_text("[Show Markdown]")
        container = row
        if show.count():
            show.click()
            container = page.get_by_role("dialog").last
            container.wait_for()
        if re.search(r"^\|.*\|\s*$", md, re.M):
            container.locator("table").first.wait_for(timeout=10_000)
        if "![" in md:
            image = container.locator("img").first
            image.wait_for(timeout=10_000)
            assert image.evaluate("img => img.complete && img.naturalWidth > 0"), f"{asset}: {label} did not load"
        if container is not row:
            page.wait_for_timeout(800)  # the dialog fades in
            save_screenshot(page, tmp_path, f"dagster_{asset}_{label}")
            page.keyboard.press("Escape")
            container.wait_for(state="detached", timeout=10_000)


def _check_preview_shows_placeholders(page, url: str, tmp_path: Path) -> None:
    """The scrub's preview shows people's text with the scrubber's placeholders (not the shared system prompt)."""
    placeholder = re.compile(r"<[A-Z][A-Z_]*_\d+>")
    page.goto(f"{url}/assets/scrubbed_examples")
    page.get_by_text("Metadata", exact=True).first.wait_for()
    cell = page.locator("td").filter(has_text=placeholder).first
    cell.wait_for(timeout=15_000)
    cell.scroll_into_view_if_needed()
    assert not page.locator("td").filter(has_text="You are the user's personal assistant").count()
    save_screenshot(page, tmp_path, "dagster_scrubbed_preview")


def _check_launchpad_refuses_invalid_overrides(url: str) -> None:
    """The launchpad validates run config through this query as the person types: a wrong value is an error
    before launch, a right one is not."""
    query = """query($selector: PipelineSelector!, $config: RunConfigData) {
      isPipelineConfigValid(pipeline: $selector, mode: "default", runConfigData: $config) {
        __typename ... on RunConfigValidationInvalid { errors { message } } } }"""
    selector = {"repositoryLocationName": LOCATION, "repositoryName": REPOSITORY, "pipelineName": "forge_retrain_job"}

    def validate(config: dict) -> dict:
        return graphql(url, query, {"selector": selector, "config": config})["isPipelineConfigValid"]

    good = validate({"ops": {"lora_adapter": {"config": {"quantization": "nf4", "learning_rate": 0.001}}}})
    assert good["__typename"] == "PipelineConfigValidationValid", good
    bad = validate({"ops": {"lora_adapter": {"config": {"quantization": "bogus"}}}})
    assert bad["__typename"] == "RunConfigValidationInvalid", bad
    assert any("bogus" in e["message"] for e in bad["errors"]), bad


def _check_mlflow_run_links_back(page, url: str, run_id: str, data_root: Path) -> None:
    """The MLflow run that lora_adapter logged names the Dagster run that trained it, and that link opens it."""
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")  # as Forge itself sets it (forge_pipeline/__init__)
    import mlflow

    entries = {e["label"]: e for e in _latest_metadata(url, "lora_adapter")}
    mlflow_run_id = entries["mlflow_run_id"]["text"]
    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{data_root}/mlflow/mlflow.db")
    tags = client.get_run(mlflow_run_id).data.tags
    assert tags["dagster.run_id"] == run_id, tags
    assert tags["dagster.run_url"].endswith(f"/runs/{run_id}"), tags
    page.goto(f"{url}/runs/{run_id}")
    page.get_by_text("Success", exact=True).first.wait_for()


@pytest.mark.timeout(CHAIN_TIMEOUT_S + 600)
def test_materialize_all_from_the_asset_graph(tmp_path):
    data_root = tmp_path / "data"
    with (
        dagster_dev(
            tmp_path, data_root=data_root, workspace=REPO_ROOT / "workspace.yaml", extra_env=_quick_training_env()
        ) as url,
        chromium_page() as page,
    ):
        assets = _asset_keys(url)
        assert {"vault_notes", "dataset_version", "lora_adapter", "adapter_manifest"} <= set(assets)

        page.goto(f"{url}/asset-groups")
        _dismiss_community_modal(page)
        page.get_by_role("button", name="Materialize all").click()
        run_id = wait_until(
            lambda: [r["runId"] for r in dagster_runs(url)],
            timeout_s=60,
            interval_s=1.0,
            what="the run that 'Materialize all' launches",
        )[0]
        save_screenshot(page, tmp_path, "dagster_launched")
        _wait_for_run(url, run_id, CHAIN_TIMEOUT_S)

        page.goto(f"{url}/runs/{run_id}")
        page.get_by_text("Success", exact=True).first.wait_for()
        save_screenshot(page, tmp_path, "dagster_run")

        page.set_viewport_size({"width": 1600, "height": 1400})
        page.goto(f"{url}/assets")
        for asset in assets:
            # The catalog is a virtualized grid of divs (no table roles); a row holds the asset's link.
            row = page.locator('[class*="VirtualizedTable_row"]').filter(has=page.locator(f'a[href="/assets/{asset}"]'))
            row.first.get_by_text("Materialized").first.wait_for()
        save_screenshot(page, tmp_path, "dagster_catalog")

        page.set_viewport_size({"width": 1600, "height": 1000})
        page.goto(f"{url}/asset-groups")
        page.get_by_role("button", name="Materialize all").wait_for()
        page.wait_for_timeout(2_000)  # the graph lays itself out after the data arrives
        save_screenshot(page, tmp_path, "dagster_asset_graph")

        for asset in ("dataset_version", "lora_adapter", "vault_notes"):
            _check_metadata_shown(page, url, asset, tmp_path)
        _check_preview_shows_placeholders(page, url, tmp_path)
        _check_launchpad_refuses_invalid_overrides(url)
        _check_mlflow_run_links_back(page, url, run_id, data_root)
        page.goto(f"{url}/assets/vault_notes")
        page.get_by_text("Metadata", exact=True).first.scroll_into_view_if_needed()
        page.wait_for_timeout(500)
        save_screenshot(page, tmp_path, "dagster_vault_notes", readme_name="dagster_asset_metadata.png")


def _quick_training_env() -> dict[str, str]:
    # The chain is the real one; only the number of optimizer steps is capped so the test stays in minutes.
    return {"FORGE_TRAIN__MAX_STEPS": "8"}


def _sensor_state(url: str) -> dict:
    selector = {
        "repositoryLocationName": LOCATION,
        "repositoryName": REPOSITORY,
        "sensorName": "new_interactions_sensor",
    }
    data = graphql(
        url,
        """query($selector: SensorSelector!) { sensorOrError(sensorSelector: $selector) {
        __typename ... on Sensor { sensorState { status ticks(limit: 10) { status skipReason runIds timestamp } } }
        ... on PythonError { message } ... on SensorNotFoundError { message } } }""",
        {"selector": selector},
    )
    sensor = data["sensorOrError"]
    if sensor["__typename"] != "Sensor":
        pytest.fail(f"new_interactions_sensor is not in the code location: {sensor.get('message')}")
    return sensor["sensorState"]


@pytest.mark.timeout(DATA_RUN_TIMEOUT_S + 600)
def test_new_interaction_file_makes_the_sensor_request_a_data_run(tmp_path):
    data_root = tmp_path / "data"
    # A copy of the sample conversations without their interactions folder: the only interaction records
    # the sensor can see are the one this test writes.
    conversations = tmp_path / "conversations"
    shutil.copytree(SAMPLE_DATA / "sample_conversations", conversations, ignore=shutil.ignore_patterns("interactions"))
    env = {"FORGE_CONVERSATIONS_DIR": str(conversations), "FORGE_SERVE__RETRAIN_THRESHOLD": "1000"}
    with (
        dagster_dev(tmp_path, data_root=data_root, workspace=REPO_ROOT / "workspace.yaml", extra_env=env) as url,
        chromium_page() as page,
    ):
        assert _sensor_state(url)["status"] == "STOPPED"  # sensors start off; a person turns them on

        # The one interaction record the sensor can see (the sample conversations were copied without theirs); the
        # run's tag counts new records, so a run tagged 1 comes from this file. That a tick with nothing new skips
        # is test_serve_core's; here the sensor's first evaluation, about a minute sooner, finds the file.
        interaction = {
            "interaction_id": str(uuid.uuid4()),
            "received_at": datetime.now(UTC).isoformat(),
            "messages": [
                {"role": "user", "content": "How do I roll back a deploy safely?"},
                {"role": "assistant", "content": "Write the rollback step before touching production."},
            ],
            "rating": "up",
            "feedback": None,
            "corrected_reply": None,
            "model_version": "ui-test",
        }
        folder = data_root / "interactions"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{datetime.now(UTC):%Y-%m-%d}.jsonl").write_text(json.dumps(interaction) + "\n")
        assert not dagster_runs(url)  # a stopped sensor requests nothing: the run below comes from turning it on

        page.goto(f"{url}/automation")
        _dismiss_community_modal(page)
        # Each automation's list item has a selection checkbox on the left and its on/off switch on the right.
        item = page.locator("[data-index]").filter(has=page.locator('a[href$="/sensors/new_interactions_sensor"]'))
        item.locator("label").last.click()  # the styled label is what is visible and clickable
        wait_until(
            lambda: _sensor_state(url)["status"] == "RUNNING",
            timeout_s=30,
            interval_s=1.0,
            what="the sensor toggle to turn the sensor on",
        )
        save_screenshot(page, tmp_path, "dagster_sensor_on")

        run = wait_until(
            lambda: dagster_runs(url), timeout_s=180, interval_s=3.0, what="new_interactions_sensor to request a run"
        )[0]
        assert run["jobName"] == "forge_data_job", run
        assert {t["key"]: t["value"] for t in run["tags"]}.get("forge/new_interactions") == "1", run["tags"]

        page.goto(f"{url}/runs")
        runs_row = page.locator("[data-index]").filter(has=page.locator(f'a[href="/runs/{run["runId"]}"]')).first
        runs_row.wait_for()
        row_text = runs_row.inner_text()
        assert "forge_data_job" in row_text and "forge/new_interactions: 1" in row_text, row_text
        save_screenshot(page, tmp_path, "dagster_runs_sensor_requested")
        _wait_for_run(url, run["runId"], DATA_RUN_TIMEOUT_S)
        page.reload()
        runs_row.get_by_text("Success", exact=True).wait_for()
        save_screenshot(page, tmp_path, "dagster_runs_after_sensor")
