"""`forge dataset show` and dataset_stats on a version folder written in the catalog's format."""

from __future__ import annotations

import json

import polars as pl
import pytest
from typer.testing import CliRunner

from forge_pipeline.cli import app
from forge_pipeline.curate.inspect import (
    CPU_REFERENCE, DatasetNotFound, GPU_REFERENCE, dataset_stats, estimate_training, model_shape, resolve_version,
    token_length_histogram_png,
)
from forge_pipeline.curate.validate import approx_tokens
from forge_pipeline.records import Quarantine
from forge_pipeline.settings import load_settings
from forge_pipeline.train.config import TrainSettings


def chat(q: str, a: str) -> list[dict]:
    return [{"role": "user", "content": q}, {"role": "assistant", "content": a}]


@pytest.fixture
def version(tmp_path):
    """A catalog with one version (train 3, validation 1) and upstream quarantine tables."""
    settings = load_settings(data_root=tmp_path)
    settings.paths.ensure()
    folder = settings.paths.catalog / "v0001"
    folder.mkdir(parents=True)
    train = [
        {"example_id": "a", "messages": chat("Call <PERSON> at <PHONE_NUMBER>?", "Yes, tomorrow."), "source": "vault",
         "tags": ["journal"], "pii_replacements": [{"entity_type": "PERSON", "placeholder": "<PERSON>"},
                                                   {"entity_type": "PHONE_NUMBER", "placeholder": "<PHONE_NUMBER>"}]},
        {"example_id": "b", "messages": chat("What is LoRA?", "Low-rank adapters. " * 40), "source": "vault",
         "tags": ["learning", "journal"], "pii_replacements": []},
        {"example_id": "c", "messages": chat("hi", "hello"), "source": "conversation", "tags": [], "pii_replacements": []},
    ]
    validation = [{"example_id": "d", "messages": chat("Email <EMAIL_ADDRESS>", "Sent."), "source": "interaction",
                   "tags": ["chat"], "pii_replacements": [{"entity_type": "EMAIL_ADDRESS", "placeholder": "<EMAIL_ADDRESS>"}]}]
    for name, rows in (("train", train), ("validation", validation)):
        (folder / f"{name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (folder / "version.json").write_text(json.dumps({"version_id": "v0001", "counts": {"train": 3, "validation": 1}}))
    (settings.paths.catalog / "catalog.json").write_text(json.dumps(
        {"versions": [{"version_id": "v0001", "counts": {"train": 3, "validation": 1}, "path": "v0001"}]}))
    dedup = Quarantine("deduplicated_examples")
    dedup.add(reason="near_duplicate", detail="cosine 0.97 to x")
    dedup.add(reason="exact_duplicate", detail="same hash as y")
    dedup.frame().write_parquet(settings.paths.quarantine / "deduplicated_examples.parquet")
    filt = Quarantine("filtered_examples")
    filt.add(reason="too_short", detail="3 words")
    filt.frame().write_parquet(settings.paths.quarantine / "filtered_examples.parquet")
    return settings, folder, train, validation


def test_dataset_stats_counts_sources_tags_pii_duplicates_and_tokens(version):
    settings, folder, train, validation = version
    stats = dataset_stats(folder, settings, hardware="cpu")
    assert stats["version_id"] == "v0001"
    assert stats["counts"] == {"train": 3, "validation": 1}
    assert stats["by_source"] == {"vault": 2, "conversation": 1, "interaction": 1}
    assert stats["by_tag"] == {"journal": 2, "learning": 1, "chat": 1}
    assert stats["pii_replaced"] == {"EMAIL_ADDRESS": 1, "PERSON": 1, "PHONE_NUMBER": 1}
    assert stats["duplicates_removed"] == 2
    assert stats["dropped_by_stage"] == {"deduplicated_examples": {"exact_duplicate": 1, "near_duplicate": 1},
                                         "filtered_examples": {"too_short": 1}}
    lengths = [approx_tokens(r["messages"]) for r in train + validation]
    assert stats["tokens"]["total"] == sum(lengths) and stats["tokens"]["max"] == max(lengths)
    estimate = stats["estimate"]
    train_tokens = sum(approx_tokens(r["messages"]) for r in train)
    assert estimate["tokens_per_epoch"] == train_tokens
    assert estimate["total_tokens"] == int(train_tokens * settings.train.num_train_epochs)
    assert estimate["seconds"] == pytest.approx(estimate["total_tokens"] / estimate["tokens_per_s"], abs=1e-3)
    assert estimate["throughput_basis"].startswith("measured")  # the tiny demo model is the CPU reference
    assert len(stats["sample"]) == 3


def test_estimate_reproduces_the_measured_8b_gpu_figures(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({
        "vocab_size": 128256, "hidden_size": 4096, "intermediate_size": 14336, "num_hidden_layers": 32,
        "num_attention_heads": 32, "num_key_value_heads": 8, "tie_word_embeddings": False}))
    train = TrainSettings(base_model=str(tmp_path), max_length=2048)
    assert model_shape(train)["params"] == GPU_REFERENCE["params"]  # Llama-3.1-8B's published count
    estimate = estimate_training([2048] * 10 + [128] * 10, train, "gpu")
    assert estimate["tokens_per_s"] == GPU_REFERENCE["tokens_per_s"]
    assert estimate["memory_gb"]["total"] == pytest.approx(GPU_REFERENCE["peak_gb"], rel=0.1)
    assert model_shape(TrainSettings(base_model="tiny-demo"))["params"] == CPU_REFERENCE["params"]
    # Another size is scaled by parameter count from the nearest measurement, and says so.
    tiny_on_gpu = estimate_training([100], TrainSettings(base_model="tiny-demo"), "gpu")
    assert tiny_on_gpu["throughput_basis"].startswith("extrapolated")
    assert tiny_on_gpu["tokens_per_s"] == pytest.approx(
        GPU_REFERENCE["tokens_per_s"] * GPU_REFERENCE["params"] / CPU_REFERENCE["params"], rel=1e-6)
    unknown = estimate_training([100], TrainSettings(base_model=str(tmp_path / "missing")), "gpu")
    assert "config.json" in unknown["note"] and "seconds" not in unknown


def test_histogram_is_a_png():
    png = token_length_histogram_png({"train": [10, 20, 20, 300], "validation": [15]}, max_length=256)
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 1000


def test_dataset_show_prints_the_report_and_saves_the_histogram(version):
    settings, folder, _, _ = version
    runner = CliRunner()
    result = runner.invoke(app, ["dataset", "show", "v0001", "--data-root", str(settings.data_root), "--hardware", "cpu"])
    assert result.exit_code == 0, result.output
    out = result.output
    assert "train 3, validation 1" in out and "duplicates removed upstream: 2" in out
    assert "PHONE_NUMBER" in out and "training estimate (cpu)" in out
    png = settings.paths.root / "reports" / "v0001" / "token_lengths.png"
    assert str(png) in out.replace("\n", "") and png.read_bytes()[:4] == b"\x89PNG"

    as_json = runner.invoke(app, ["dataset", "show", "latest", "--json", "--data-root", str(settings.data_root)])
    assert json.loads(as_json.output)["counts"] == {"train": 3, "validation": 1}

    by_prefix = runner.invoke(app, ["dataset", "show", "v00", "--json", "--data-root", str(settings.data_root)])
    assert json.loads(by_prefix.output)["version_id"] == "v0001"

    missing = runner.invoke(app, ["dataset", "show", "v9", "--data-root", str(settings.data_root)])
    assert missing.exit_code == 1 and "known versions: v0001" in missing.output


def test_resolve_version_without_catalog_names_what_to_do(tmp_path):
    with pytest.raises(DatasetNotFound, match="forge demo"):
        resolve_version(load_settings(data_root=tmp_path), "v1")


def test_dataset_version_metadata_embeds_the_plot_and_the_estimate(version):
    from forge_pipeline.defs.curate.metadata import dataset_version_metadata

    settings, folder, _, _ = version
    metadata = dataset_version_metadata(folder, settings)
    assert metadata["duplicates_removed"].value == 2
    assert metadata["pii_replaced"].data == {"EMAIL_ADDRESS": 1, "PERSON": 1, "PHONE_NUMBER": 1}
    report = metadata["dataset_report"].value
    assert "data:image/png;base64,iVBORw0KGgo" in report and "Training estimate" in report


def test_stats_of_a_version_written_by_the_real_catalog_take_pii_from_the_curated_table(tmp_path):
    from forge_pipeline.catalog.versions import create_dataset_version
    from forge_pipeline.curate.apply import apply_decisions
    from forge_pipeline.records import EXAMPLE_SCHEMA, examples_frame
    from forge_pipeline_tests.test_curate_decisions import example_rows

    settings = load_settings(data_root=tmp_path)
    settings.paths.ensure()
    frame = examples_frame(example_rows()).with_columns(pl.Series(
        "pii_replacements", [[], [{"entity_type": "PERSON", "placeholder": "<PERSON>"}], [], []]))
    curated, _, _ = apply_decisions(frame, {}, include_unreviewed=True)
    curated.write_parquet(settings.paths.tables / "curated_examples.parquet")
    create_dataset_version(curated.select(list(EXAMPLE_SCHEMA)), settings)

    stats = dataset_stats(resolve_version(settings, "latest"), settings, hardware="cpu")
    assert sum(stats["counts"].values()) == 4
    assert stats["by_source"] == {"vault": 2, "conversation": 2}
    assert stats["pii_replaced"] == {"PERSON": 1}
    assert stats["pii_replaced_from"].endswith("curated_examples.parquet")
