"""A/B serving on real GGUFs (tiny base + two real LoRA adapter GGUFs): routing shares, per-version tags,
ratings on the right version, `forge compare` figures and one-command promotion."""

from __future__ import annotations

import json
import math
import os

import pytest
from typer.testing import CliRunner

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from forge_pipeline.export.manifest import ManifestError, promote_candidate, read_manifest, set_candidate  # noqa: E402
from forge_pipeline.serve.routing import TrafficRouter  # noqa: E402


@pytest.mark.parametrize("share", [0.05, 0.2, 0.5, 0.9])
def test_router_share_holds_within_tolerance_over_many_decisions(share):
    n = 10_000
    for seed in (0, 1, 2):
        router = TrafficRouter(seed)
        observed = sum(router.to_candidate(share) for _ in range(n)) / n
        assert abs(observed - share) <= 4 * math.sqrt(share * (1 - share) / n), (seed, observed)
    # Same seed, same sequence (reproducible benchmarks); edges are exact.
    assert [TrafficRouter(7).to_candidate(0.5) for _ in range(1)] == [TrafficRouter(7).to_candidate(0.5)]
    assert not any(TrafficRouter(0).to_candidate(0.0) for _ in range(1000))
    assert all(TrafficRouter(0).to_candidate(1.0) for _ in range(1000))


@pytest.fixture(scope="module")
def ab_server(serve_models, tmp_path_factory):
    from fastapi.testclient import TestClient

    from forge_pipeline.serve.app import create_app
    from forge_pipeline.settings import load_settings
    from forge_pipeline_tests.gguf_fixtures import write_manifest

    models = serve_models  # the session's shared tiny GGUFs (conftest)
    root = tmp_path_factory.mktemp("ab_root")
    settings = load_settings(data_root=root, serve={"n_ctx": 256, "embeddings": False}, feedback={"router_seed": 3})
    settings.paths.ensure()
    write_manifest(settings.paths.manifest, models, "v0001")
    set_candidate(settings.paths.manifest, "v0002", 0.3)
    app = create_app(settings, watch=False)
    with TestClient(app) as client:
        yield {"client": client, "settings": settings, "app": app}


def _chat(client, text="How should I plan a migration?"):
    body = {"messages": [{"role": "user", "content": text}], "max_tokens": 4, "temperature": 0}
    response = client.post("/v1/chat/completions", json=body)
    assert response.status_code == 200, response.text
    return response


@pytest.mark.slow
def test_chat_requests_split_by_share_and_each_response_names_its_version(ab_server):
    client = ab_server["client"]
    assert client.get("/health").json()["candidate"] == {"version": "v0002", "traffic_share": 0.3, "shared_base": True}
    replies: dict[str, set[str]] = {"v0001": set(), "v0002": set()}
    n = 200
    for _ in range(n):
        response = _chat(client)
        version = response.headers["x-forge-model-version"]
        assert response.json()["model"] == version
        replies[version].add(response.json()["choices"][0]["message"]["content"])
    served = [
        json.loads(line)
        for f in sorted((ab_server["settings"].paths.manifest.parent / "served").glob("*.jsonl"))
        for line in f.read_text().splitlines()
    ]
    assert len(served) == n
    to_candidate = sum(r["route"] == "candidate" for r in served)
    assert abs(to_candidate / n - 0.3) <= 4 * math.sqrt(0.3 * 0.7 / n), to_candidate
    assert all((r["model_version"] == "v0002") == (r["route"] == "candidate") for r in served)
    # Greedy decoding: each version always answers the same, and the two adapters answer differently, so no
    # request ran with the other version's adapter or its stale cache after a per-request swap.
    assert len(replies["v0001"]) == 1 and len(replies["v0002"]) == 1, replies
    assert replies["v0001"] != replies["v0002"]
    assert all(r["latency_ms"] > 0 and r["completion_tokens"] is not None for r in served)


@pytest.mark.slow
def test_ratings_land_on_the_version_that_served_the_response(ab_server):
    from forge_pipeline.feedback.compare import compare_versions
    from forge_pipeline.serve.interactions import InteractionStore, ServedLog, served_log_dir

    client, settings = ab_server["client"], ab_server["settings"]
    by_version: dict[str, list[str]] = {"v0001": [], "v0002": []}
    while min(len(v) for v in by_version.values()) < 3:
        response = _chat(client, "Buy a flat next spring?")
        by_version[response.headers["x-forge-model-version"]].append(response.json()["id"])
    question = [{"role": "user", "content": "Buy a flat next spring?"}, {"role": "assistant", "content": "..."}]
    for version, rating in (("v0002", "up"), ("v0002", "up"), ("v0001", "down"), ("v0001", "up")):
        response_id = by_version[version].pop()
        posted = client.post(
            "/v1/interactions", json={"messages": question, "rating": rating, "response_id": response_id}
        )
        assert posted.status_code == 201, posted.text
    # The client's claim cannot move a rating to another version; unknown responses are refused.
    wrong = client.post(
        "/v1/interactions",
        json={"messages": question, "rating": "up", "model_version": "v0002", "response_id": by_version["v0001"][0]},
    )
    assert wrong.status_code == 400 and "does not match" in wrong.json()["error"]["message"]
    unknown = client.post("/v1/interactions", json={"messages": question, "rating": "up", "response_id": "nope"})
    assert unknown.status_code == 400
    client.post(
        "/v1/interactions",
        json={
            "messages": [question[0]],
            "choice": {"replies": ["a", "b"], "chosen": 1, "model_versions": ["v0001", "v0002"]},
        },
    )

    stored = InteractionStore(settings.paths.interactions).read_all()
    assert sorted((r.model_version, r.rating) for r in stored if r.rating) == [
        ("v0001", "down"),
        ("v0001", "up"),
        ("v0002", "up"),
        ("v0002", "up"),
    ]
    figures = compare_versions(
        "v0001",
        "v0002",
        read_manifest(settings.paths.manifest),
        ServedLog(served_log_dir(settings)).read_all(),
        stored,
        settings.tracking_uri,
    )
    assert (figures["v0002"]["rated_up"], figures["v0002"]["rated_down"]) == (2, 0)
    assert (figures["v0001"]["rated_up"], figures["v0001"]["rated_down"], figures["v0001"]["up_share"]) == (1, 1, 0.5)
    assert figures["v0002"]["win_rate"] == 1.0 and figures["v0001"]["win_rate"] == 0.0
    assert figures["v0001"]["role"] == "current" and figures["v0002"]["role"] == "candidate"
    assert figures["v0002"]["requests"] >= 2 and figures["v0002"]["latency_ms_median"] > 0

    from forge_pipeline.cli import app

    shown = CliRunner().invoke(
        app,
        ["--data-root", str(settings.data_root), "compare", "v0001", "v0002", "--json"],
        env={
            "FORGE_DATA_ROOT": str(settings.data_root),  # not the sample interactions:
            "FORGE_CONVERSATIONS_DIR": str(settings.data_root / "no_conversations"),
        },
    )
    assert shown.exit_code == 0, shown.output
    assert json.loads(shown.stdout)["v0002"]["rated_up"] == 2


@pytest.mark.slow
def test_a_broken_candidate_is_dropped_and_current_keeps_all_traffic(ab_server):
    from forge_pipeline.atomic import write_json_atomic

    client, settings, host = ab_server["client"], ab_server["settings"], ab_server["app"].state.host
    manifest = read_manifest(settings.paths.manifest)
    write_json_atomic(settings.paths.manifest, {**manifest, "candidate": {"version": "v0009", "traffic_share": 0.5}})
    host.reload()
    health = client.get("/health").json()
    assert health["candidate"] is None and "v0009" in health["candidate_error"] and health["error"] is None
    assert all(_chat(client).headers["x-forge-model-version"] == "v0001" for _ in range(10))
    write_json_atomic(settings.paths.manifest, manifest)  # the A/B test resumes
    host.reload()
    assert client.get("/health").json()["candidate"]["version"] == "v0002"


@pytest.mark.slow
def test_promote_makes_the_candidate_current_in_one_command(ab_server):
    from forge_pipeline.cli import app

    client, settings = ab_server["client"], ab_server["settings"]
    with pytest.raises(ManifestError, match="not v0001"):
        promote_candidate(settings.paths.manifest, "v0001")
    result = CliRunner().invoke(app, ["--data-root", str(settings.data_root), "promote"])
    assert result.exit_code == 0, result.output
    manifest = read_manifest(settings.paths.manifest)
    assert manifest["current"] == "v0002" and manifest["candidate"] is None and manifest["history"][-1] == "v0002"
    ab_server["app"].state.host.reload()
    health = client.get("/health").json()
    assert health["model_version"] == "v0002" and health["candidate"] is None
    assert all(_chat(client).headers["x-forge-model-version"] == "v0002" for _ in range(10))
    again = CliRunner().invoke(app, ["--data-root", str(settings.data_root), "promote"])
    assert again.exit_code == 1 and "no A/B candidate" in again.output
