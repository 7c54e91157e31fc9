"""The demo, as a person runs it: `forge demo` over the shipped sample data, the whole chain, in a fresh data root.

This is the integration test of every stage together: real Dagster instance on disk, real presidio, real
FAISS, a real trl run logged to a real MLflow SQLite store, llama.cpp's converter and quantizer, and
llama-cpp-python loading what the manifest points at. It then checks that no planted personal data
reached the dataset, the MLflow store or the Dagster event log.
"""

import os
import re
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest

from forge_pipeline.definitions import defs
from forge_pipeline.export.manifest import read_manifest, verify_version

REPO = Path(__file__).resolve().parent.parent

# Values planted in the sample vault and conversations (forge_pipeline/sample_data/, see its README) that the PII step
# must remove before anything is written past scrubbed_examples.
PLANTED_PII = [
    "jonas.berg@gmail.com",
    "priya.raman@fastmail.com",
    "t.alvarez@example.org",
    "anna.holm@example.org",
    "415 555 0132",
    "(212) 555-0198",
    "+44 20 7946 0958",
    "4111 1111 1111 1111",
    "DE89 3704 0044 0532 0130 00",
    "221 Maple Street",
    "Storgatan 12",
]


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("demo")
    env = {
        **os.environ,
        "DAGSTER_HOME": str(root / "dagster_home"),
        "FORGE_DATA_ROOT": str(root / "data"),
        "HF_HUB_OFFLINE": "1",
        "FORGE_DEBUG": "1",
    }
    completed = subprocess.run(
        [sys.executable, "-m", "forge_pipeline.cli", "demo"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=1500,
    )
    return root, completed


@pytest.mark.slow
def test_demo_materializes_every_asset_and_prints_where_outputs_are(demo_run):
    root, completed = demo_run
    assert completed.returncode == 0, completed.stdout[-4000:] + completed.stderr[-4000:]
    for asset in ("vault_notes", "dataset_version", "lora_adapter", "gguf_model", "adapter_manifest"):
        assert f"✓ {asset}" in completed.stdout
    # The progress list reads upstream first: no asset is ticked before one of its parents.
    ticked = [line.split("✓", 1)[1].strip() for line in completed.stdout.splitlines() if "✓" in line]
    graph = defs.resolve_asset_graph()
    for n, asset in enumerate(ticked):
        parents = {key.to_user_string() for key in graph.get(dg.AssetKey(asset)).parent_keys}
        assert parents.isdisjoint(ticked[n + 1 :]), f"{asset} printed before its parents: {ticked}"
    assert str(root / "data") in completed.stdout
    # The final table: base vs tuned held-out perplexity, two answers side by side, the gate's decision.
    assert "held-out perplexity" in completed.stdout and "gate: " in completed.stdout
    assert completed.stdout.count("held-out-") >= 2  # held-out prompts come first in the side-by-side rows
    # Training progress from the Pipes log lines, printed while the run goes on (at least its last line).
    assert re.search(r"lora_adapter: step \d+/\d+ \(100%\)", completed.stdout), completed.stdout[-3000:]


@pytest.mark.slow
def test_demo_terminal_shows_forge_output_only_and_names_the_log_with_the_rest(demo_run):
    root, completed = demo_run
    assert completed.returncode == 0
    shown = completed.stdout + completed.stderr
    # What libraries print (warnings, tqdm bars, llama.cpp's converter and quantizer lines) stays off the terminal.
    for noise in ("Warning", "warnings.warn", "it/s]", "Loading weights", "llama_model_quantize", "INFO:"):
        assert noise not in shown, f"{noise!r} reached the terminal:\n{shown[-3000:]}"
    assert len(shown.splitlines()) <= 60, shown
    # ... and goes to the run's log file, named in the last lines.
    logs = list((root / "data" / "logs").glob("demo-*.log"))
    assert len(logs) == 1 and str(logs[0]) in shown.splitlines()[-1], shown[-500:]
    assert logs[0].stat().st_size > 0


@pytest.mark.slow
def test_demo_manifest_points_at_files_that_load_and_generate(demo_run):
    root, completed = demo_run
    assert completed.returncode == 0
    manifest_path = root / "data" / "serve" / "adapter_manifest.json"
    manifest = read_manifest(manifest_path)
    # The default gate (tuned validation loss below base, nothing forced open) promotes the demo's adapter.
    version = manifest["current"]
    assert version is not None and manifest["versions"][version]["promoted"] is True, manifest["versions"]
    files = verify_version(manifest, version, manifest_path)
    assert {"base_gguf", "adapter_gguf", "merged_gguf"} <= set(files)

    from llama_cpp import Llama

    llm = Llama(model_path=str(files["merged_gguf"]), n_ctx=256, verbose=False)
    try:
        out = llm.create_completion("I'm weighing whether to", max_tokens=8, temperature=0.0)
        assert out["usage"]["completion_tokens"] >= 1
    finally:
        llm.close()


@pytest.mark.slow
def test_demo_keeps_dropped_inputs_with_reasons(demo_run):
    import polars as pl

    root, completed = demo_run
    assert completed.returncode == 0
    quarantine = pl.concat(
        [pl.read_parquet(p) for p in (root / "data" / "quarantine").glob("*.parquet")], how="diagonal_relaxed"
    )
    files = " ".join(quarantine["file"].drop_nulls().to_list())
    for broken in ("bad frontmatter.md", "latin1 note.md", "empty.md", "chats.jsonl"):
        assert broken in files, f"{broken} was dropped without a quarantine record"
    assert quarantine["reason"].null_count() == 0


@pytest.mark.slow
def test_no_planted_pii_reaches_dataset_mlflow_or_event_log(demo_run):
    root, completed = demo_run
    assert completed.returncode == 0
    searched = []
    for folder in (
        root / "data" / "catalog",
        root / "data" / "mlflow",
        root / "data" / "adapters",
        root / "data" / "logs",  # library output the demo kept off the terminal
        root / "dagster_home",
    ):
        for path in folder.rglob("*"):
            if path.is_file() and path.stat().st_size < 200_000_000:
                data = path.read_bytes()
                searched.append(path)
                for value in PLANTED_PII:
                    assert value.encode() not in data, f"planted PII {value!r} found in {path}"
    assert any(p.suffix == ".jsonl" for p in searched) and any(p.name.endswith(".db") for p in searched)
    # The log the person saw on screen must not carry it either.
    for value in PLANTED_PII:
        assert value not in completed.stdout + completed.stderr
