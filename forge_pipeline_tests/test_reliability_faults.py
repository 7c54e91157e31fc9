"""Faults (issue 8): disk full while writing a dataset version, concurrent materializations of one asset,
an export killed between conversion and quantization, and a GGUF corrupted after the manifest was written.

Already covered elsewhere and not repeated: training killed mid-run resumes from its checkpoint in the same
MLflow run (test_train_resume.py); a quantizer *error* between conversion and quantization leaves nothing
(test_export_toolchain.py::test_failure_between_conversion_and_quantization_leaves_nothing); a manifest
pointing at a file with another sha256, or truncated JSON, is refused while the old version keeps serving
(test_serve_server.py::test_corrupt_manifest_is_refused_and_old_version_keeps_serving); a crashing writer
keeps the old file / folder (test_settings_and_atomic.py).
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from datetime import UTC, datetime
from pathlib import Path

import polars as pl
import pytest

from forge_pipeline.catalog import versions
from forge_pipeline.catalog.versions import CatalogError, create_dataset_version, list_versions, load_version
from forge_pipeline.export.handoff import AdapterInfo, Evaluation, GgufAdapter, GgufModel
from forge_pipeline.records import example_id_for, examples_frame
from forge_pipeline.settings import load_settings

REPO = Path(__file__).resolve().parents[1]
os.environ.setdefault("HF_HUB_OFFLINE", "1")


def _examples(n: int, tag: str = "") -> pl.DataFrame:
    rows = []
    for i in range(n):
        messages = [
            {"role": "system", "content": "s"},
            {"role": "user", "content": f"question {tag}{i}"},
            {"role": "assistant", "content": f"an answer {tag}{i} with a few more words " * 20},
        ]
        rows.append(
            {
                "example_id": example_id_for(messages),
                "messages": messages,
                "source": "conversation",
                "source_path": "chats.jsonl",
                "conversation_id": f"c{i}",
                "created_at": datetime(2026, 4, 1, tzinfo=UTC),
                "tags": [],
            }
        )
    return examples_frame(rows)


def _assert_catalog_intact(settings, expected_ids: list[str]) -> None:
    entries = list_versions(settings)
    assert [e["version_id"] for e in entries] == expected_ids
    for entry in entries:
        assert json.loads((Path(entry["path"]) / "version.json").read_text())["version_id"] == entry["version_id"]
        data = load_version(settings, entry["version_id"])
        assert data["train"].num_rows == entry["counts"]["train"]
    leftovers = [
        p.name for p in settings.paths.catalog.iterdir() if p.name.startswith(".") and not p.name.endswith(".lock")
    ]
    assert not leftovers, leftovers


# -- disk full ------------------------------------------------------------------------------------------------


def test_disk_full_while_writing_a_dataset_version_leaves_the_catalog_as_it_was(tmp_path, monkeypatch):
    settings = load_settings(data_root=tmp_path / "root")
    first = create_dataset_version(_examples(10, "a"), settings, {})
    catalog_before = versions.catalog_file(settings).read_bytes()
    written = {"bytes": 0}
    real_open = open

    class FullDisk:
        """A file whose writes fail with ENOSPC after 2 KB, as on a full filesystem."""

        def __init__(self, handle):
            self.handle = handle

        def write(self, data):
            written["bytes"] += len(data)
            if written["bytes"] > 2048:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), self.handle.name)
            return self.handle.write(data)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.handle.close()

    # Fault injected at the dataset write call: the JSONL export of the new version (after the Arrow files).
    monkeypatch.setattr(versions, "open", lambda *a, **k: FullDisk(real_open(*a, **k)), raising=False)
    with pytest.raises(CatalogError) as err:
        create_dataset_version(_examples(30, "b"), settings, {})
    message = str(err.value)
    assert "no space left on the device" in message and "previous versions are intact" in message
    assert "re-materialize dataset_version" in message and isinstance(err.value.__cause__, OSError)
    assert written["bytes"] > 2048  # the fault really fired mid-write
    assert versions.catalog_file(settings).read_bytes() == catalog_before
    _assert_catalog_intact(settings, [first["version_id"]])
    assert sorted(p.name for p in settings.paths.catalog.iterdir() if p.is_dir()) == [first["version_id"]]
    # Space freed: the same call now succeeds and the new version follows the old one.
    monkeypatch.undo()
    second = create_dataset_version(_examples(30, "b"), settings, {})
    assert second["parent"] == first["version_id"]
    _assert_catalog_intact(settings, [first["version_id"], second["version_id"]])


@pytest.fixture
def small_tmpfs(tmp_path):
    """A real 1 MB tmpfs (needs root / CAP_SYS_ADMIN; skipped where mounting is not allowed)."""
    mount_point = tmp_path / "small"
    mount_point.mkdir()
    if shutil.which("mount") is None or os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount_point)], capture_output=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", "-l", str(mount_point)], check=False)


def test_a_really_full_filesystem_fails_clearly_and_keeps_earlier_versions(small_tmpfs):
    settings = load_settings(data_root=small_tmpfs / "root")
    first = create_dataset_version(_examples(5, "a"), settings, {})
    catalog_before = versions.catalog_file(settings).read_bytes()
    filler = small_tmpfs / "filler"
    with open(filler, "wb") as handle:  # fill the disk to the last block
        try:
            while True:
                handle.write(b"\0" * 65536)
                handle.flush()
        except OSError as err:
            assert err.errno == errno.ENOSPC
    with pytest.raises(CatalogError, match="no space left on the device"):
        create_dataset_version(_examples(200, "b"), settings, {})
    assert versions.catalog_file(settings).read_bytes() == catalog_before
    _assert_catalog_intact(settings, [first["version_id"]])
    filler.unlink()
    second = create_dataset_version(_examples(200, "b"), settings, {})
    _assert_catalog_intact(settings, [first["version_id"], second["version_id"]])


# -- concurrent materializations ---------------------------------------------------------------------------

CHILD = textwrap.dedent("""
    import os, sys, time
    from pathlib import Path
    data_root, salt, go = sys.argv[1], sys.argv[2], Path(sys.argv[3])
    os.environ["FORGE_CATALOG__SPLIT_SALT"] = salt  # same asset, same input, another split: another version
    import dagster as dg
    from forge_pipeline.catalog import versions
    from forge_pipeline.definitions import group_definitions
    from forge_pipeline.defs.resources import shared_resources

    real_write = versions._write_version

    def slow_write(*args, **kwargs):  # widen the read-modify-write window of catalog.json to make a race certain
        time.sleep(0.4)
        return real_write(*args, **kwargs)

    versions._write_version = slow_write
    while not go.exists():
        time.sleep(0.01)
    curated = dg.AssetSpec("curated_examples")
    result = dg.materialize([curated, *group_definitions("catalog").assets], resources=shared_resources(data_root),
                            instance=dg.DagsterInstance.ephemeral())
    print(result.asset_materializations_for_node("dataset_version")[0].metadata["version_id"].value)
""")


@pytest.mark.slow  # four processes importing Dagster on two cores: ~75 s
def test_concurrent_materializations_of_dataset_version_keep_every_version(tmp_path):
    """Four processes materialize dataset_version at the same moment (Dagster, real files): catalog.json's
    read-modify-write is under a file lock, so no version is lost and no folder is half-written."""
    root = tmp_path / "root"
    (root / "tables").mkdir(parents=True)
    _examples(40).write_parquet(root / "tables" / "curated_examples.parquet")
    go = tmp_path / "go"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(REPO)}
    salts = ["s1", "s2", "s3", "s1"]  # the last repeats the first: the same version, written once
    children = [
        subprocess.Popen(
            [sys.executable, "-c", CHILD, str(root), salt, str(go)],
            env=env,
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for salt in salts
    ]
    time.sleep(1.0)
    go.touch()
    outputs = [child.communicate(timeout=300) for child in children]
    for child, (_out, err) in zip(children, outputs, strict=True):
        assert child.returncode == 0, err[-3000:]
    produced = [out.strip().splitlines()[-1] for out, _ in outputs]
    assert produced[0] == produced[3] and len(set(produced)) == 3
    settings = load_settings(data_root=root)
    entries = list_versions(settings)
    assert sorted(e["version_id"] for e in entries) == sorted(set(produced))
    # Serialized by the lock: each version's parent is the one written just before it.
    assert [e["parent"] for e in entries] == [None] + [e["version_id"] for e in entries[:-1]]
    _assert_catalog_intact(settings, [e["version_id"] for e in entries])


def test_concurrent_catalog_writers_in_one_process_keep_every_version(tmp_path, monkeypatch):
    """Dagster's in-process executor runs materializations as threads of one process: the lock holds there too.
    (Without it, measured: 1 of 4 versions survives; catalog.json is read-modify-written by each.)"""
    import threading

    settings = load_settings(data_root=tmp_path / "root")
    real_write = versions._write_version

    def slow_write(*args, **kwargs):  # widen the race window
        time.sleep(0.3)
        return real_write(*args, **kwargs)

    monkeypatch.setattr(versions, "_write_version", slow_write)
    errors = []

    def create(i: int) -> None:
        try:
            create_dataset_version(_examples(8, f"t{i}"), settings, {})
        except Exception as err:  # noqa: BLE001 - reported below
            errors.append(err)

    threads = [threading.Thread(target=create, args=(i,)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not errors
    entries = list_versions(settings)
    assert len(entries) == 4
    assert [e["parent"] for e in entries] == [None] + [e["version_id"] for e in entries[:-1]]
    _assert_catalog_intact(settings, [e["version_id"] for e in entries])


def test_concurrent_manifest_publishes_keep_every_version(tmp_path):
    """Several exports publishing at once get distinct version ids and all land in the manifest."""
    import concurrent.futures

    from forge_pipeline.export.manifest import publish_version, read_manifest, verify_version

    manifest_path = tmp_path / "serve" / "adapter_manifest.json"
    files = []
    for i in range(6):
        path = tmp_path / "exports" / f"run{i}" / "merged-q4_k_m.gguf"
        path.parent.mkdir(parents=True)
        path.write_bytes(b"GGUF" + bytes([i]) * 100)
        files.append(path)

    def publish(i: int) -> None:
        from forge_pipeline.export.manifest import describe_file

        entry = {"files": {"merged_gguf": describe_file(files[i], manifest_path)}, "dataset_version": f"d{i}"}
        publish_version(manifest_path, entry, promote=True)

    with concurrent.futures.ThreadPoolExecutor(6) as pool:
        list(pool.map(publish, range(6)))
    manifest = read_manifest(manifest_path)
    assert sorted(manifest["versions"]) == [f"v{i:04d}" for i in range(1, 7)]
    assert sorted(e["dataset_version"] for e in manifest["versions"].values()) == [f"d{i}" for i in range(6)]
    assert len(manifest["history"]) == 6 and manifest["current"] == manifest["history"][-1]
    for version in manifest["versions"]:
        verify_version(manifest, version, manifest_path)


# -- export killed between conversion and quantization -------------------------------------------------------


# serve_models: the session's tiny GGUFs and the HF folders they were converted from (conftest); the tests
# below only read them or work on private copies.


KILLED_EXPORT = textwrap.dedent("""
    import os, signal, sys
    from pathlib import Path
    import llama_cpp
    from forge_pipeline.export import gguf
    from forge_pipeline.export.config import ExportSettings
    base, adapter, out, when = Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3]), sys.argv[4]
    real_quantize = llama_cpp.llama_model_quantize

    def die(*args):
        if when == "inside_quantize":  # llama.cpp has written the whole temp file; die before the rename
            real_quantize(*args)
        os.kill(os.getpid(), signal.SIGKILL)

    llama_cpp.llama_model_quantize = die
    gguf.export_merged_model(base, adapter, out / "run1", ExportSettings(), exports_dir=out)
""")


@pytest.mark.slow
def test_export_killed_between_conversion_and_quantization_publishes_nothing_and_reruns(serve_models, tmp_path):
    from forge_pipeline.export import gguf
    from forge_pipeline.export.config import ExportSettings
    from forge_pipeline.export.manifest import ManifestError, read_manifest, verify_version
    from forge_pipeline.export.publish import publish

    base_dir = serve_models.base_gguf.parent / "base_hf"
    adapter_dir = serve_models.base_gguf.parent / "adapter1_hf"
    out = tmp_path / "exports"
    run = out / "run1"
    manifest_path = tmp_path / "serve" / "adapter_manifest.json"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(REPO)}
    for when in ("before_quantize", "inside_quantize"):
        done = subprocess.run(
            [sys.executable, "-c", KILLED_EXPORT, str(base_dir), str(adapter_dir), str(out), when],
            env=env,
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert done.returncode == -signal.SIGKILL, (when, done.returncode, done.stderr[-2000:])
        # SIGKILL skips every `finally`: what is left is hidden (dot-named) and nothing has a final name.
        visible = sorted(p.name for p in run.iterdir() if not p.name.startswith("."))
        assert visible == [], (when, visible)
        hidden = sorted(p.name for p in run.iterdir())
        assert any(n.startswith(".staging.") for n in hidden), hidden  # the converted f16 was in staging
        if when == "inside_quantize":
            assert any(n.startswith(".merged-q4_k_m.gguf.") and n.endswith(".partial") for n in hidden), hidden
        # Publishing at this point refuses: no half-made model can reach the manifest.
        with pytest.raises(ManifestError, match="does not exist"):
            publish(
                manifest_path,
                _info(base_dir, adapter_dir),
                _PASSED,
                GgufModel(
                    base_gguf=serve_models.base_gguf,
                    base_f16_gguf=serve_models.base_gguf,
                    merged_gguf=run / "merged-q4_k_m.gguf",
                    quant_type="Q4_K_M",
                ),
                _adapter(serve_models),
            )
        assert not manifest_path.exists()
    # The re-run cleans up what the kills left and produces complete files.
    model = gguf.export_merged_model(base_dir, adapter_dir, run, ExportSettings(), exports_dir=out)
    assert sorted(p.name for p in run.iterdir()) == ["Modelfile", "merged-q4_k_m.gguf"]
    assert not list(out.rglob("*.partial")) and not list(out.rglob(".staging.*"))
    published = publish(
        manifest_path, _info(base_dir, adapter_dir), _PASSED, GgufModel(**model), _adapter(serve_models)
    )
    files = verify_version(read_manifest(manifest_path), published.version, manifest_path)
    assert files["merged_gguf"].read_bytes()[:4] == b"GGUF"


def _info(base_dir: Path, adapter_dir: Path) -> AdapterInfo:
    return AdapterInfo(
        adapter_dir=adapter_dir,
        base_model_dir=base_dir,
        base_model_name="tiny",
        is_demo_model=True,
        dataset_version="d1",
    )


_PASSED = Evaluation(
    base_loss=2.0, tuned_loss=1.0, relative_improvement=0.5, min_relative_improvement=0.0, promoted=True, reason=""
)


def _adapter(serve_models) -> GgufAdapter:
    base = serve_models.base_gguf
    return GgufAdapter(adapter_gguf=serve_models.adapters[0], base_gguf=base, base_f16_gguf=base)


# -- a GGUF corrupted after the manifest was written ----------------------------------------------------------


@pytest.mark.slow
def test_gguf_corrupted_after_the_manifest_is_refused_and_the_old_model_keeps_serving(serve_models, tmp_path):
    from forge_pipeline.serve.models import ModelHost
    from forge_pipeline_tests.gguf_fixtures import ServeModels, write_manifest

    # Private copies: the session's files are shared with the serving tests.
    copies = []
    for path in (serve_models.base_gguf, *serve_models.adapters):
        copies.append(tmp_path / "models" / path.name)
        copies[-1].parent.mkdir(exist_ok=True)
        shutil.copy2(path, copies[-1])
    models = ServeModels(copies[0], (copies[1], copies[2]))
    manifest = tmp_path / "serve" / "adapter_manifest.json"
    write_manifest(manifest, models, "v0001")
    host = ModelHost(manifest, n_ctx=256, embeddings=False)

    def greedy() -> tuple[str, str]:
        with host.session() as session:
            text = session.llm.create_completion("The migration plan", max_tokens=6, temperature=0)["choices"][0][
                "text"
            ]
            return session.version, text

    try:
        assert host.poll_once()["version"] == "v0001"
        before = greedy()
        # v0002 is promoted (its adapter hashed into the manifest), then the adapter is damaged on disk in place,
        # same size, before the server notices the new manifest.
        write_manifest(manifest, models, "v0002")
        original = models.adapters[1].read_bytes()
        damaged = bytearray(original)
        middle = len(damaged) // 2
        damaged[middle : middle + 64] = bytes(64)
        models.adapters[1].write_bytes(bytes(damaged))
        result = host.poll_once()
        assert result["changed"] is False and "sha256" in result["error"]
        health = host.health()
        assert health["model_version"] == "v0001" and health["status"] == "degraded" and "v0002" in health["error"]
        assert greedy() == before  # still the old model, still generating
        # A truncated file is refused too (size check before hashing).
        models.adapters[1].write_bytes(original[: len(original) // 3])
        assert "sha256/size" in host.reload()["error"] and greedy() == before
        # Repaired: an explicit reload (the admin route) now swaps to v0002.
        models.adapters[1].write_bytes(original)
        swapped = host.reload()
        assert swapped["changed"] is True and swapped["version"] == "v0002" and host.health()["status"] == "ok"
        assert greedy()[0] == "v0002"
    finally:
        host.close()


def test_a_failing_demo_step_prints_one_line_naming_it_and_keeps_the_trace_in_the_run_log(tmp_path, monkeypatch):
    import dagster as dg
    from typer.testing import CliRunner

    from forge_pipeline.cli import app

    missing = tmp_path / "no_vault_here"
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster_home"))
    monkeypatch.setenv("FORGE_VAULT_DIR", str(missing))
    result = CliRunner().invoke(
        app, ["--data-root", str(tmp_path / "data"), "demo", "--select", "vault_notes"], env={"COLUMNS": "300"}
    )
    assert result.exit_code == 1
    assert "Traceback" not in result.output and 'File "' not in result.output
    failures = [line for line in result.output.splitlines() if "failed" in line]
    assert len(failures) == 1, result.output
    line = failures[0]
    assert line.startswith("forge demo: step vault_notes failed: FileNotFoundError: vault folder")
    # The rerun command asks again for what this run asked for, from the failed step on: here vault_notes alone.
    assert str(missing) in line and "FORGE_VAULT_DIR" in line and "--select 'vault_notes'" in line
    run_id = line.split("full trace: run ")[1].split()[0]
    with dg.DagsterInstance.get() as instance:
        # What the Dagster UI's run view shows: the step failure with its stack trace.
        logged = instance.all_logs(run_id, of_type=dg.DagsterEventType.STEP_FAILURE)
    error = logged[0].dagster_event.step_failure_data.error
    assert "vault folder" in error.to_string() and len(error.to_string().splitlines()) > 10
