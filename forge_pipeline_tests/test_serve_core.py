"""Interaction store, admin guard, and the retrain sensor/schedule on real files and a real Dagster instance."""

from __future__ import annotations

import json
import multiprocessing
from datetime import UTC, datetime

import dagster as dg
import pytest
from fastapi.testclient import TestClient
from pydantic import ValidationError

from forge_pipeline.defs.resources import ForgeSettingsResource
from forge_pipeline.defs.serve.sensors import new_interactions_sensor, nightly_retrain
from forge_pipeline.serve.app import create_app
from forge_pipeline.serve.interactions import InteractionIn, InteractionStore
from forge_pipeline.serve.retrain import ScanState
from forge_pipeline.settings import load_settings


def _record(i: int) -> InteractionIn:
    return InteractionIn(
        messages=[
            {"role": "user", "content": f"question {i} " + "pad " * 200},
            {"role": "assistant", "content": f"answer {i}"},
        ],
        rating="up",
    )


def _writer(directory: str, start: int, count: int) -> None:
    store = InteractionStore(directory)
    for i in range(start, start + count):
        store.append(_record(i))


def test_concurrent_writers_never_interleave_lines(tmp_path):
    processes = [
        multiprocessing.get_context("spawn").Process(target=_writer, args=(str(tmp_path), k * 100, 40))
        for k in range(3)
    ]
    for p in processes:
        p.start()
    for p in processes:
        p.join(60)
        assert p.exitcode == 0
    records = InteractionStore(tmp_path).read_all()  # raises on any torn line
    assert len(records) == 120
    assert {r.messages[1].content for r in records} == {f"answer {k * 100 + i}" for k in range(3) for i in range(40)}


def test_records_go_to_the_utc_day_file_in_the_conventions_format(tmp_path):
    store = InteractionStore(tmp_path)
    stored = store.append(_record(1), when=datetime(2026, 3, 4, 23, 59, tzinfo=UTC))
    line = json.loads((tmp_path / "2026-03-04.jsonl").read_text())
    assert set(line) == {
        "interaction_id",
        "received_at",
        "messages",
        "rating",
        "feedback",
        "corrected_reply",
        "model_version",
    }
    assert line["interaction_id"] == stored.interaction_id and line["received_at"] == "2026-03-04T23:59:00Z"


@pytest.mark.parametrize(
    "body,field",
    [
        ({"messages": [{"role": "assistant", "content": "hi"}]}, "user"),
        ({"messages": [{"role": "user", "content": ""}]}, "content"),
        ({"messages": [{"role": "user", "content": "hi"}], "rating": "5"}, "rating"),
        ({"messages": [{"role": "tool", "content": "hi"}]}, "role"),
    ],
)
def test_invalid_interactions_name_the_problem(body, field):
    with pytest.raises(ValidationError) as err:
        InteractionIn.model_validate(body)
    assert field in str(err.value)


def test_admin_routes_refuse_non_loopback_clients_without_token(tmp_path):
    settings = load_settings(data_root=tmp_path, serve={"admin_token": "s3cret"})
    app = create_app(settings, watch=False)
    remote = TestClient(app, client=("203.0.113.7", 40000))
    assert remote.post("/admin/reload").status_code == 403
    assert remote.post("/v1/fine_tuning/jobs", json={}).status_code == 403
    assert remote.get("/v1/fine_tuning/jobs/x/events").status_code == 403
    assert remote.post("/admin/reload", headers={"Authorization": "Bearer wrong"}).status_code == 403
    # With the token the request gets through the guard (409: there is no manifest to load).
    allowed = remote.post("/admin/reload", headers={"Authorization": "Bearer s3cret"})
    assert allowed.status_code == 409 and "no current version" in allowed.json()["error"]
    local = TestClient(app, client=("127.0.0.1", 40000))
    assert local.post("/admin/reload").status_code == 403  # loopback is not trusted unless configured
    assert local.post("/admin/reload", headers={"Authorization": "Bearer s3cret"}).status_code == 409
    trusting = load_settings(data_root=tmp_path, serve={"admin_token": "s3cret", "admin_loopback_without_token": True})
    assert (
        TestClient(create_app(trusting, watch=False), client=("127.0.0.1", 40000)).post("/admin/reload").status_code
        == 409
    )
    # Without a model, inference says why instead of failing obscurely.
    assert local.post("/v1/completions", json={"prompt": "hi"}).status_code == 503


def _append_lines(path, count, start=0):
    with open(path, "a") as handle:
        for i in range(start, start + count):
            handle.write(
                json.dumps({"interaction_id": f"id{i}", "messages": [{"role": "user", "content": "q"}]}) + "\n"
            )


def test_sensor_requests_data_refresh_then_retrain_at_threshold(tmp_path, monkeypatch):
    vault, conversations = tmp_path / "vault", tmp_path / "conversations"
    (conversations / "interactions").mkdir(parents=True)
    vault.mkdir()
    sample = conversations / "interactions" / "2026-01-01.jsonl"
    _append_lines(sample, 3)
    forge = ForgeSettingsResource(data_root=str(tmp_path / "root"))
    monkeypatch.setenv("FORGE_CONVERSATIONS_DIR", str(conversations))
    monkeypatch.setenv("FORGE_SERVE__RETRAIN_THRESHOLD", "5")
    settings = forge.get()
    assert settings.serve.retrain_threshold == 5 and settings.conversations_dir == conversations
    served = settings.paths.interactions / "2026-01-02.jsonl"
    with dg.DagsterInstance.ephemeral() as instance:

        def tick(cursor):
            context = dg.build_sensor_context(instance=instance, cursor=cursor, resources={"forge": forge})
            result = new_interactions_sensor(context)
            return result, context.cursor

        first, cursor = tick(None)
        assert isinstance(first, dg.RunRequest) and first.job_name == "forge_data_job"
        assert first.tags["forge/new_interactions"] == "3"
        again, cursor = tick(cursor)
        assert isinstance(again, dg.SkipReason)
        # A half-written line is not counted until it is complete.
        _append_lines(served, 1)
        with open(served, "a") as handle:
            handle.write('{"interaction_id": "partial"')
        second, cursor = tick(cursor)
        assert second.job_name == "forge_data_job" and second.tags["forge/new_interactions"] == "1"
        with open(served, "a") as handle:
            handle.write("}\n")
        third, cursor = tick(cursor)  # 3 + 1 + 1 = 5 >= threshold
        assert third.job_name == "forge_retrain_job" and third.tags["forge/new_interactions"] == "1"
        # The serving version is taught the new records (train.continue_from), not retrained from the base.
        assert third.run_config == {"ops": {"lora_adapter": {"config": {"continue_from": "current"}}}}
        assert first.run_config == {}
        assert ScanState.from_cursor(cursor).since_retrain == 0
        _append_lines(sample, 2, start=10)
        fourth, cursor = tick(cursor)
        assert fourth.job_name == "forge_data_job" and ScanState.from_cursor(cursor).since_retrain == 2


def test_sensor_first_tick_starts_after_the_interactions_already_ingested(tmp_path, monkeypatch):
    """Switched on after `conversations` read the sample interactions: those are not new and do not count toward
    the retrain threshold. Bug: the first tick requested a run for them and counted them."""
    conversations = tmp_path / "conversations"
    (conversations / "interactions").mkdir(parents=True)
    sample = conversations / "interactions" / "2026-01-01.jsonl"
    _append_lines(sample, 4)
    monkeypatch.setenv("FORGE_CONVERSATIONS_DIR", str(conversations))
    monkeypatch.setenv("FORGE_SERVE__RETRAIN_THRESHOLD", "5")
    forge = ForgeSettingsResource(data_root=str(tmp_path / "root"))
    with dg.DagsterInstance.ephemeral() as instance:
        instance.report_runless_asset_event(dg.AssetMaterialization("conversations"))  # the dataset read them

        def tick(cursor):
            context = dg.build_sensor_context(instance=instance, cursor=cursor, resources={"forge": forge})
            return new_interactions_sensor(context), context.cursor

        first, cursor = tick(None)
        assert isinstance(first, dg.SkipReason), first
        _append_lines(forge.get().paths.interactions / "2026-01-02.jsonl", 2)
        second, cursor = tick(cursor)
        assert second.job_name == "forge_data_job" and second.tags["forge/new_interactions"] == "2"
        assert ScanState.from_cursor(cursor).since_retrain == 2  # not 6: the ingested four never counted


def test_nightly_schedule_skips_when_nothing_changed(tmp_path, monkeypatch):
    import os

    vault = tmp_path / "vault"
    vault.mkdir()
    note = vault / "note.md"
    note.write_text("hello")
    old = datetime(2026, 1, 1, tzinfo=UTC).timestamp()
    os.utime(note, (old, old))
    monkeypatch.setenv("FORGE_VAULT_DIR", str(vault))
    monkeypatch.setenv("FORGE_CONVERSATIONS_DIR", str(tmp_path / "none"))
    forge = ForgeSettingsResource(data_root=str(tmp_path / "root"))
    with dg.DagsterInstance.ephemeral() as instance:
        at = datetime(2026, 6, 1, 3, 0, tzinfo=UTC)
        context = dg.build_schedule_context(instance=instance, scheduled_execution_time=at, resources={"forge": forge})
        assert isinstance(nightly_retrain(context), dg.SkipReason)
        recent = at.timestamp() - 3600
        os.utime(note, (recent, recent))
        request = nightly_retrain(context)
        assert isinstance(request, dg.RunRequest) and request.run_key == "nightly-2026-06-01"


def test_downloads_hash_a_file_once_per_path_size_and_mtime(tmp_path):
    """A model download must not re-read a multi-GB file per request: the sha256 check is remembered per
    (path, size, mtime). Proof: bytes changed in place with size and mtime kept are still served (not
    re-hashed); touching the file makes the next download check again and refuse it (409)."""
    import os

    from forge_pipeline.atomic import write_json_atomic
    from forge_pipeline.export.manifest import describe_file, empty_manifest

    settings = load_settings(data_root=tmp_path / "root", serve={"embeddings": False})
    settings.paths.ensure()
    gguf = tmp_path / "model.gguf"
    gguf.write_bytes(b"GGUF" + b"\1" * 64)
    manifest = empty_manifest()
    manifest["versions"]["v0001"] = {
        "version": "v0001",
        "files": {"merged_gguf": describe_file(gguf, settings.paths.manifest), "base_gguf": None, "adapter_gguf": None},
    }
    manifest["current"] = "v0001"
    write_json_atomic(settings.paths.manifest, manifest)
    client = TestClient(create_app(settings, watch=False))
    assert client.get("/v1/models/v0001/gguf").content == b"GGUF" + b"\1" * 64
    stat = gguf.stat()
    gguf.write_bytes(b"GGUF" + b"\2" * 64)
    os.utime(gguf, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert client.get("/v1/models/v0001/gguf").status_code == 200  # remembered: not hashed again
    os.utime(gguf, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    refused = client.get("/v1/models/v0001/gguf")
    assert refused.status_code == 409 and "sha256" in refused.json()["error"]["message"]
