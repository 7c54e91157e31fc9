"""`forge dataset show` and dataset_stats on a version folder written in the catalog's format."""

from __future__ import annotations

import json
import math

import polars as pl
import pytest
from typer.testing import CliRunner

from forge_pipeline.catalog.versions import approx_tokens
from forge_pipeline.cli import app
from forge_pipeline.curate.inspect import (
    DatasetNotFound,
    dataset_stats,
    estimate_training,
    model_shape,
    resolve_version,
    token_length_histogram_png,
)
from forge_pipeline.records import Quarantine
from forge_pipeline.settings import load_settings
from forge_pipeline.train.config import TinyModelSettings, TrainSettings

LLAMA_31_8B = {
    "vocab_size": 128256,
    "hidden_size": 4096,
    "intermediate_size": 14336,
    "num_hidden_layers": 32,
    "num_attention_heads": 32,
    "num_key_value_heads": 8,
    "tie_word_embeddings": False,
}


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
        {
            "example_id": "a",
            "messages": chat("Call <PERSON> at <PHONE_NUMBER>?", "Yes, tomorrow."),
            "source": "vault",
            "tags": ["journal"],
            "pii_replacements": [
                {"entity_type": "PERSON", "placeholder": "<PERSON>"},
                {"entity_type": "PHONE_NUMBER", "placeholder": "<PHONE_NUMBER>"},
            ],
        },
        {
            "example_id": "b",
            "messages": chat("What is LoRA?", "Low-rank adapters. " * 40),
            "source": "vault",
            "tags": ["learning", "journal"],
            "pii_replacements": [],
        },
        {
            "example_id": "c",
            "messages": chat("hi", "hello"),
            "source": "conversation",
            "tags": [],
            "pii_replacements": [],
        },
    ]
    validation = [
        {
            "example_id": "d",
            "messages": chat("Email <EMAIL_ADDRESS>", "Sent."),
            "source": "interaction",
            "tags": ["chat"],
            "pii_replacements": [{"entity_type": "EMAIL_ADDRESS", "placeholder": "<EMAIL_ADDRESS>"}],
        }
    ]
    for name, rows in (("train", train), ("validation", validation)):
        (folder / f"{name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (folder / "version.json").write_text(json.dumps({"version_id": "v0001", "counts": {"train": 3, "validation": 1}}))
    (settings.paths.catalog / "catalog.json").write_text(
        json.dumps(
            {"versions": [{"version_id": "v0001", "counts": {"train": 3, "validation": 1}, "path": "catalog/v0001"}]}
        )
    )
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
    assert stats["dropped_by_stage"] == {
        "deduplicated_examples": {"exact_duplicate": 1, "near_duplicate": 1},
        "filtered_examples": {"too_short": 1},
    }
    lengths = [approx_tokens(r["messages"]) for r in train + validation]
    assert stats["tokens"]["total"] == sum(lengths) and stats["tokens"]["max"] == max(lengths)
    estimate = stats["estimate"]
    # The estimate covers the train split only: validation examples are not trained on.
    assert estimate["tokens_per_epoch"] == sum(approx_tokens(r["messages"]) for r in train)
    assert estimate["seconds"] > 0 and estimate["memory_gb"]["total"] > 0
    assert estimate["throughput_basis"].startswith("measured")  # the tiny demo model is the CPU reference
    assert len(stats["sample"]) == 3


def _transformers_parameter_count(**config) -> int:
    """Parameters of the Llama transformers builds from this config (on the meta device: no memory used)."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    with torch.device("meta"):
        model = LlamaForCausalLM(LlamaConfig(**config))
    return sum(p.numel() for p in model.parameters())


def _llama_8b(tmp_path, **train) -> TrainSettings:
    (tmp_path / "config.json").write_text(json.dumps(LLAMA_31_8B))
    # The measured 8B recipe: padded batches of 4 (the CPU default is batch 1).
    return TrainSettings(base_model=str(tmp_path), **{"max_length": 2048, "per_device_train_batch_size": 4, **train})


def test_model_shape_counts_the_parameters_transformers_builds():
    assert model_shape(TrainSettings(base_model="tiny-demo"))["params"] == _transformers_parameter_count(
        **TinyModelSettings().model_dump(exclude={"seed"}), tie_word_embeddings=False
    )
    tiny = TinyModelSettings(
        vocab_size=512,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=3,
        num_attention_heads=4,
        num_key_value_heads=1,
    )
    assert model_shape(TrainSettings(base_model="tiny-demo", tiny_model=tiny))[
        "params"
    ] == _transformers_parameter_count(**tiny.model_dump(exclude={"seed"}), tie_word_embeddings=False)


def test_estimate_of_the_8b_gpu_run_is_near_its_measured_peak_memory(tmp_path):
    train = _llama_8b(tmp_path)
    assert model_shape(train)["params"] == 8_030_261_248  # Llama-3.1-8B's published count
    estimate = estimate_training([2048] * 10 + [128] * 10, train, "gpu")
    assert estimate["throughput_basis"].startswith("measured")
    # Measured on one H100: 14.6 GB peak for this shape and recipe (benchmarks/README.md, reference measurements).
    assert estimate["memory_gb"]["total"] == pytest.approx(14.6, rel=0.1)


def test_estimate_grows_with_tokens_epochs_model_size_and_example_length(tmp_path):
    small = TrainSettings(base_model="tiny-demo", num_train_epochs=1)
    one = estimate_training([500] * 20, small, "cpu")
    assert estimate_training([500] * 40, small, "cpu")["seconds"] == pytest.approx(2 * one["seconds"], rel=0.01)
    assert estimate_training([500] * 20, TrainSettings(base_model="tiny-demo", num_train_epochs=3), "cpu")[
        "seconds"
    ] == pytest.approx(3 * one["seconds"], rel=0.01)
    # Examples are cut at max_length: a longer one costs no more than one of max_length tokens.
    cut = TrainSettings(base_model="tiny-demo", num_train_epochs=1, max_length=256)
    assert estimate_training([10_000], cut, "cpu")["tokens_per_epoch"] == 256
    assert estimate_training([10_000], cut, "cpu")["memory_gb"] == estimate_training([256], cut, "cpu")["memory_gb"]
    # A larger model is slower per token; the tiny one on a GPU is scaled from the 8B measurement and says so.
    tiny_gpu = estimate_training([1000] * 1000, small, "gpu")
    big_gpu = estimate_training([1000] * 1000, _llama_8b(tmp_path, num_train_epochs=1), "gpu")
    assert big_gpu["seconds"] > 100 * tiny_gpu["seconds"] > 0
    assert tiny_gpu["throughput_basis"].startswith("extrapolated")
    # Padded batches: memory follows the longest example.
    short, long = (estimate_training([n], _llama_8b(tmp_path), "gpu")["memory_gb"] for n in (128, 2048))
    assert long["activations"] > short["activations"] and long["total"] > short["total"]


def test_estimate_memory_follows_quantization_and_gradient_checkpointing(tmp_path):
    lengths = [2048] * 4
    nf4, bf16 = (
        estimate_training(lengths, _llama_8b(tmp_path, quantization=q), "gpu")["memory_gb"] for q in ("nf4", "none")
    )
    assert 3.5 < bf16["weights"] / nf4["weights"] < 4.0  # 2 bytes vs half a byte plus quantization constants
    on, off = (
        estimate_training(lengths, _llama_8b(tmp_path, gradient_checkpointing=c), "gpu")["memory_gb"]
        for c in (True, False)
    )
    assert off["activations"] > 10 * on["activations"]
    assert on["weights"] == off["weights"]


def test_estimate_without_a_model_shape_says_what_to_do(tmp_path):
    unknown = estimate_training([100], TrainSettings(base_model=str(tmp_path / "missing")), "gpu")
    assert "config.json" in unknown["note"] and "seconds" not in unknown


def test_histogram_is_a_png():
    png = token_length_histogram_png({"train": [10, 20, 20, 300], "validation": [15]}, max_length=256)
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 1000


def test_dataset_show_prints_the_report_and_saves_the_histogram(version):
    settings, folder, _, _ = version
    runner = CliRunner()
    result = runner.invoke(
        app, ["--data-root", str(settings.data_root), "dataset", "show", "v0001", "--hardware", "cpu"]
    )
    assert result.exit_code == 0, result.output
    out = result.output
    assert "train 3, validation 1" in out and "duplicates removed upstream: 2" in out
    assert "PHONE_NUMBER" in out and "training estimate (cpu)" in out
    png = settings.paths.root / "reports" / "v0001" / "token_lengths.png"
    assert str(png) in out.replace("\n", "") and png.read_bytes()[:4] == b"\x89PNG"

    as_json = runner.invoke(app, ["--data-root", str(settings.data_root), "dataset", "show", "latest", "--json"])
    assert json.loads(as_json.output)["counts"] == {"train": 3, "validation": 1}

    by_prefix = runner.invoke(app, ["--data-root", str(settings.data_root), "dataset", "show", "v00", "--json"])
    assert json.loads(by_prefix.output)["version_id"] == "v0001"

    missing = runner.invoke(app, ["--data-root", str(settings.data_root), "dataset", "show", "v9"])
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


def test_training_time_is_calibrated_on_this_machines_finished_runs(version):
    """No reference throughput from other hardware: without a finished run there is no time, and with one the
    time is its seconds per step times this version's steps."""
    from forge_pipeline.atomic import write_json_atomic
    from forge_pipeline.defs.curate.metadata import dataset_version_metadata

    settings, folder, _, _ = version
    report = dataset_version_metadata(folder, settings)["dataset_report"].value
    assert "tok/s" not in report and "the first run calibrates this estimate" in report

    base = settings.train.base_model
    finished = {
        "base_model_name": f"{base}-0123",
        "run_key": "abcdef0123",
        "metrics": {"wall_s": 30.0, "global_step": 12},
    }
    write_json_atomic(settings.paths.adapters / "k" / "run_state.json", {"status": "finished", "result": finished})
    metadata = dataset_version_metadata(folder, settings)
    time = metadata["training_estimate"].data["time"]
    steps = math.ceil(math.ceil(3 / settings.train.per_device_train_batch_size) * settings.train.num_train_epochs)
    assert time["steps"] == steps and time["seconds"] == pytest.approx(steps * 2.5)
    assert "measured on this machine: 30.0 s for 12 steps (run abcdef01)" in metadata["dataset_report"].value


def test_stats_of_a_version_written_by_the_real_catalog_take_pii_from_the_curated_table(tmp_path):
    from forge_pipeline.catalog.versions import create_dataset_version
    from forge_pipeline.curate.apply import apply_decisions
    from forge_pipeline.records import EXAMPLE_SCHEMA, examples_frame
    from forge_pipeline_tests.test_curate_decisions import example_rows

    settings = load_settings(data_root=tmp_path)
    settings.paths.ensure()
    frame = examples_frame(example_rows()).with_columns(
        pl.Series("pii_replacements", [[], [{"entity_type": "PERSON", "placeholder": "<PERSON>"}], [], []])
    )
    curated, _, _ = apply_decisions(frame, {}, include_unreviewed=True)
    curated.write_parquet(settings.paths.tables / "curated_examples.parquet")
    create_dataset_version(curated.select(list(EXAMPLE_SCHEMA)), settings)

    stats = dataset_stats(resolve_version(settings, "latest"), settings, hardware="cpu")
    assert sum(stats["counts"].values()) == 4
    assert stats["by_source"] == {"vault": 2, "conversation": 2}
    assert stats["pii_replaced"] == {"PERSON": 1}
    assert stats["pii_replaced_from"].endswith("curated_examples.parquet")
