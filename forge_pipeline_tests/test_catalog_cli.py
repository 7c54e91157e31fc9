"""`forge datasets`, `forge dataset show` and `forge status` on a real catalog and a real Dagster instance."""

import json
from datetime import UTC, datetime

import dagster as dg
import polars as pl
from typer.testing import CliRunner

from forge_pipeline.catalog.versions import create_dataset_version
from forge_pipeline.cli import app, run_summary
from forge_pipeline.curate.inspect import dataset_stats
from forge_pipeline.records import example_id_for, examples_frame


def _examples(n: int) -> pl.DataFrame:
    rows = []
    for i in range(n):
        messages = [
            {"role": "user", "content": f"question {i}?"},
            {"role": "assistant", "content": "A longer answer, with words. " * (1 + i % 7)},
        ]
        rows.append(
            {
                "example_id": example_id_for(messages),
                "messages": messages,
                "source": "vault",
                "source_path": f"n{i}.md",
                "conversation_id": None,
                "created_at": datetime(2026, 1, 1, tzinfo=UTC),
                "tags": ["t"],
            }
        )
    return examples_frame(rows)


def test_datasets_prints_whole_paths_at_80_columns(settings):
    entry = create_dataset_version(_examples(12), settings, {})
    result = CliRunner().invoke(app, ["--data-root", str(settings.data_root), "datasets"], env={"COLUMNS": "80"})
    assert result.exit_code == 0, result.output
    assert len(entry["path"]) > 60  # longer than any table column could be at 80 columns
    assert f"{entry['version_id']}  {entry['path']}" in result.output.splitlines()


def test_dataset_show_token_stats_agree_with_the_catalog_and_label_replacements(settings):
    entry = create_dataset_version(_examples(40), settings, {})
    stats = dataset_stats(settings.paths.catalog / entry["version_id"], settings, hardware="cpu")
    for split in ("train", "validation"):
        assert stats["tokens"]["by_split"][split] == entry["token_stats"][split]
    folder = settings.paths.catalog / entry["version_id"]
    rows = [json.loads(line) for line in (folder / "train.jsonl").read_text().splitlines()]
    rows[0]["pii_replacements"] = [{"entity_type": "PERSON", "placeholder": "<PERSON>"}] * 3
    (folder / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    result = CliRunner().invoke(
        app,
        ["--data-root", str(settings.data_root), "dataset", "show", entry["version_id"], "--hardware", "cpu"],
        env={"COLUMNS": "200"},
    )
    assert result.exit_code == 0, result.output
    pii_table = result.output[result.output.index("PII replaced") :]
    assert "replacements" in pii_table.splitlines()[2] and "PERSON" in pii_table
    mean = entry["token_stats"]["train"]["mean"]
    assert f"train: mean {mean}," in result.output


@dg.asset
def status_probe() -> int:
    return 1


@dg.asset_check(asset=status_probe)
def probe_is_positive() -> dg.AssetCheckResult:
    return dg.AssetCheckResult(passed=False, metadata={"why": "planted failure"})


def test_status_shows_last_run_per_job_failed_checks_and_embedding_index(settings, monkeypatch, tmp_path):
    home = tmp_path / "dagster_home"
    home.mkdir()
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    with dg.DagsterInstance.from_config(str(home)) as instance:
        first = dg.materialize([status_probe, probe_is_positive], instance=instance)
        second = dg.materialize([status_probe, probe_is_positive], instance=instance)
        jobs, failed = run_summary(instance)
    assert jobs == [{"job": "__ephemeral_asset_job__", "run_id": second.run_id, "status": "SUCCESS"}]
    assert failed == [{"asset": "status_probe", "check": "probe_is_positive", "passed": False, "run_id": second.run_id}]
    assert first.run_id != second.run_id
    embeddings = settings.data_root / "embeddings"
    embeddings.mkdir(parents=True)
    (embeddings / "versions.json").write_text(
        json.dumps(
            {
                "current": "e0001",
                "versions": [{"version_id": "e0001", "model": "all-MiniLM-L6-v2", "chunks": 96, "dimension": 384}],
            }
        )
    )
    result = CliRunner().invoke(app, ["--data-root", str(settings.data_root), "status"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "embedding index: e0001 (all-MiniLM-L6-v2, 96 chunks, dimension 384; 1 version(s))" in result.output
    assert "__ephemeral_asset_job__" in result.output and second.run_id in result.output
    assert f"FAILED check status_probe:probe_is_positive (run {second.run_id})" in result.output
