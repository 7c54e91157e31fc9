"""The real server (uvicorn subprocess) on a tiny real GGUF base with two real LoRA adapter GGUFs."""

from __future__ import annotations

import concurrent.futures
import json
import threading
import time

import httpx
import pytest

from forge_pipeline.export.manifest import sha256_of
from forge_pipeline_tests.gguf_fixtures import write_manifest
from forge_pipeline_tests.serve_fixtures import MAX_BYTES, hang_up_before_first_byte, start_server, stop

pytestmark = pytest.mark.slow


@pytest.fixture
def server(serve_server):
    return serve_server


def _wait_for_version(client, version: str, timeout: float = 10) -> dict:
    deadline = time.time() + timeout
    while time.time() < deadline:
        health = client.get("/health").json()
        if health["model_version"] == version:
            return health
        time.sleep(0.1)
    raise AssertionError(f"server still on {health['model_version']}, expected {version}: {health}")


def _greedy(client, prompt="The migration plan") -> tuple[str, str]:
    response = client.post("/v1/completions", json={"prompt": prompt, "max_tokens": 12, "temperature": 0})
    assert response.status_code == 200, response.text
    return response.headers["x-forge-model-version"], response.json()["choices"][0]["text"]


def test_chat_completion_names_its_version_and_is_logged(server):
    client = server["client"]
    body = {
        "messages": [{"role": "user", "content": "How should I plan a migration?"}],
        "max_tokens": 8,
        "temperature": 0,
    }
    response = client.post("/v1/chat/completions", json=body)
    assert response.status_code == 200, response.text
    payload = response.json()
    assert payload["model"] == "v0001" and response.headers["x-forge-model-version"] == "v0001"
    assert payload["object"] == "chat.completion" and payload["choices"][0]["message"]["role"] == "assistant"
    assert payload["usage"]["completion_tokens"] <= 8
    # Served chats are logged (setting on); the reply is a fixed greedy string, so whether it is empty is known:
    # the assertion always runs, and an empty reply (which is not logged) fails it rather than skipping it.
    reply = payload["choices"][0]["message"]["content"]
    assert reply.strip(), "the greedy reply of the test model is expected to be non-empty"
    lines = [
        json.loads(line)
        for f in (server["root"] / "interactions").glob("*.jsonl")
        for line in f.read_text().splitlines()
    ]
    assert any(
        r["messages"][0]["content"] == "How should I plan a migration?"
        and r["model_version"] == "v0001"
        and r["messages"][-1] == {"role": "assistant", "content": reply}
        for r in lines
    )


def test_chat_streaming_sends_sse_chunks_and_done(server):
    body = {
        "messages": [{"role": "user", "content": "Reflect on this week."}],
        "max_tokens": 6,
        "stream": True,
        "temperature": 0,
    }
    with server["client"].stream("POST", "/v1/chat/completions", json=body) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        assert response.headers["x-forge-model-version"] == "v0001"
        events = [line[len("data: ") :] for line in response.iter_lines() if line.startswith("data: ")]
    assert events[-1] == "[DONE]"
    chunks = [json.loads(e) for e in events[:-1]]
    assert chunks and all(c["object"] == "chat.completion.chunk" and c["model"] == "v0001" for c in chunks)
    assert chunks[-1]["choices"][0]["finish_reason"] in ("stop", "length")


def test_completion_is_deterministic_at_temperature_zero(server):
    assert _greedy(server["client"]) == _greedy(server["client"])


def test_embeddings_have_the_models_width(server):
    response = server["client"].post("/v1/embeddings", json={"input": ["read replicas", "team lead"]})
    assert response.status_code == 200, response.text
    data = response.json()["data"]
    assert len(data) == 2 and len(data[0]["embedding"]) == 256
    assert data[0]["embedding"] != data[1]["embedding"]


def test_models_routes_list_and_describe_manifest_versions(server):
    client = server["client"]
    listing = client.get("/v1/models").json()
    assert {m["id"] for m in listing["data"]} == {"v0001", "v0002"} and listing["serving"] == "v0001"
    entry = client.get("/v1/models/v0002").json()
    assert entry["id"] == "v0002" and entry["object"] == "model" and isinstance(entry["created"], int)
    assert entry["files"]["adapter_gguf"]["sha256"] == sha256_of(server["models"].adapters[1])
    assert client.get("/v1/models/v9999").status_code == 404


def test_downloads_serve_only_manifest_files(server):
    client = server["client"]
    adapter = client.get("/v1/models/v0002/adapter")
    assert adapter.status_code == 200 and adapter.content == server["models"].adapters[1].read_bytes()
    gguf = client.get("/v1/models/v0001/gguf")
    assert gguf.status_code == 200 and gguf.content[:4] == b"GGUF"
    assert len(gguf.content) == server["models"].base_gguf.stat().st_size
    base = client.get("/v1/models/v0002/base")
    assert base.status_code == 200 and base.content == server["models"].base_gguf.read_bytes()
    head = client.head("/v1/models/v0002/adapter")
    assert head.status_code == 200 and head.content == b""
    assert int(head.headers["content-length"]) == server["models"].adapters[1].stat().st_size
    for hostile in (
        "/v1/models/..%2F..%2Fetc/gguf",
        "/v1/models/..%2F..%2Fetc%2Fpasswd/adapter",
        "/v1/models/%2Fetc%2Fpasswd/gguf",
        "/v1/models/v9999/gguf",
    ):
        response = client.get(hostile)
        assert response.status_code == 404, (hostile, response.status_code)
        assert b"root:" not in response.content


def test_interactions_are_durable_and_invalid_ones_rejected(server):
    client = server["client"]
    good = {
        "messages": [
            {"role": "user", "content": "Is this note useful?"},
            {"role": "assistant", "content": "Yes, link it from Home."},
        ],
        "rating": "up",
        "model_version": "v0001",
    }
    response = client.post("/v1/interactions", json=good)
    assert response.status_code == 201, response.text
    assert "/" not in response.json()["stored_in"]  # a file name, not the server's own path
    stored_in = server["root"] / "interactions" / response.json()["stored_in"]
    records = [json.loads(line) for line in stored_in.read_text().splitlines()]
    assert any(r["interaction_id"] == response.json()["interaction_id"] and r["rating"] == "up" for r in records)
    bad_bodies = [
        {"messages": []},
        {"messages": [{"role": "assistant", "content": "no user"}]},
        {"messages": [{"role": "user", "content": "   "}]},
        {"messages": [{"role": "robot", "content": "hi"}]},
        {"messages": [{"role": "user", "content": "hi"}], "rating": "meh"},
        {"messages": [{"role": "user", "content": "no reply to rate"}], "rating": "up"},
        {"messages": [{"role": "user", "content": "no reply to correct"}], "corrected_reply": "better"},
    ]
    for bad in bad_bodies:
        response = client.post("/v1/interactions", json=bad)
        assert response.status_code == 400, bad
        assert response.json()["error"]["type"] == "invalid_request_error" and response.json()["error"]["message"], bad
    assert (
        client.post("/v1/interactions", content=b"{not json", headers={"content-type": "application/json"}).status_code
        == 400
    )


def test_body_over_the_limit_is_413(server):
    huge = {"messages": [{"role": "user", "content": "x" * (MAX_BYTES + 10)}]}
    assert server["client"].post("/v1/interactions", json=huge).status_code == 413

    def chunks():  # no content-length: the server must count
        for _ in range(10):
            yield b"y" * (MAX_BYTES // 5)

    assert server["client"].post("/v1/interactions", content=chunks()).status_code == 413

    def small():  # a chunked body under the limit must still reach the route intact
        yield json.dumps({"messages": [{"role": "user", "content": "chunked hello"}]}).encode()

    response = server["client"].post("/v1/interactions", content=small(), headers={"content-type": "application/json"})
    assert response.status_code == 201, response.text


def test_abandoned_stream_does_not_block_later_requests(server):
    client = server["client"]
    body = {"messages": [{"role": "user", "content": "Write a long reflection."}], "max_tokens": 200, "stream": True}
    with httpx.Client(base_url=client.base_url, timeout=60) as other:  # its own connection, closed on exit
        with other.stream("POST", "/v1/chat/completions", json=body) as response:
            next(response.iter_lines())  # read one event, then hang up mid-stream
    with httpx.Client(base_url=client.base_url, timeout=15) as fresh:
        for _ in range(3):
            assert _greedy(fresh)[0] == "v0001"


def _uploaded(server) -> str:
    line = json.dumps({"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]})
    response = server["client"].post(
        "/v1/files", files={"file": ("t.jsonl", line.encode())}, data={"purpose": "fine-tune"}
    )
    assert response.status_code == 200, response.text
    return response.json()["id"]


def test_fine_tuning_without_dagster_answers_502_with_the_reason(server):
    response = server["client"].post(
        "/v1/fine_tuning/jobs", json={"model": "forge", "training_file": _uploaded(server)}
    )
    assert response.status_code == 502
    assert "unreachable" in response.json()["error"]["message"]
    assert server["client"].get("/v1/fine_tuning/jobs").status_code == 200  # the job list needs no Dagster


def test_hot_swap_changes_version_and_output_without_restart(server):
    client, manifest = server["client"], server["manifest"]
    before = _greedy(client)
    write_manifest(manifest, server["models"], "v0002")
    health = _wait_for_version(client, "v0002")
    assert health["recent_swaps"][-1]["kind"] == "adapter_swap" and health["recent_swaps"][-1]["swap_ms"] < 50
    after = _greedy(client)
    assert after[0] == "v0002" and after[1] != before[1]
    write_manifest(manifest, server["models"], "v0001")
    _wait_for_version(client, "v0001")
    assert _greedy(client) == before


def test_corrupt_manifest_is_refused_and_old_version_keeps_serving(server, tmp_path):
    client, manifest_path = server["client"], server["manifest"]
    original = manifest_path.read_text()
    # v0002's adapter replaced by a file with a different sha256.
    manifest = json.loads(original)
    fake = tmp_path / "tampered.gguf"
    fake.write_bytes(b"GGUF" + b"\0" * 100)
    entry = manifest["versions"]["v0002"]["files"]["adapter_gguf"]
    entry["path"] = str(fake)
    entry["size_bytes"] = fake.stat().st_size
    manifest["current"] = "v0002"
    manifest_path.write_text(json.dumps(manifest))
    try:
        deadline = time.time() + 10
        while not (health := client.get("/health").json())["error"] and time.time() < deadline:
            time.sleep(0.1)
        assert "sha256" in health["error"] and health["model_version"] == "v0001" and health["status"] == "degraded"
        assert _greedy(client)[0] == "v0001"
        manifest_path.write_text("{ truncated")
        deadline = time.time() + 10
        while "not valid JSON" not in (client.get("/health").json()["error"] or "") and time.time() < deadline:
            time.sleep(0.1)
        assert "not valid JSON" in client.get("/health").json()["error"]
        assert _greedy(client)[0] == "v0001"
        models = client.get("/v1/models")  # still answers with what was verified and is loaded, says what is wrong
        ids = [m["id"] for m in models.json()["data"]]
        assert models.status_code == 200 and "v0001" in ids and set(ids) <= {"v0001", "v0002"}
        assert "not valid JSON" in models.json()["manifest_error"]
    finally:
        manifest_path.write_text(original)
    deadline = time.time() + 10
    while client.get("/health").json()["error"] and time.time() < deadline:
        time.sleep(0.1)
    assert client.get("/health").json()["status"] == "ok"


def test_concurrent_requests_during_swaps_all_succeed(server):
    client, manifest, models = server["client"], server["manifest"], server["models"]
    expected = {}
    for version in ("v0002", "v0001"):
        write_manifest(manifest, models, version)
        _wait_for_version(client, version)
        expected[version] = _greedy(client)[1]

    def one(i: int):
        response = client.post(
            "/v1/completions", json={"prompt": "The migration plan", "max_tokens": 12, "temperature": 0}
        )
        return response.status_code, response.headers.get("x-forge-model-version"), response.json()

    with concurrent.futures.ThreadPoolExecutor(6) as pool:
        futures = [pool.submit(one, i) for i in range(36)]
        for step in range(6):
            write_manifest(manifest, models, ("v0002", "v0001")[step % 2])
            time.sleep(0.25)
        results = [f.result() for f in futures]
    assert all(status == 200 for status, _, _ in results)
    # Each answer matches the version it claims: no request saw a half-swapped model or stale KV cache.
    for _, version, payload in results:
        assert payload["choices"][0]["text"] == expected[version]
    write_manifest(manifest, models, "v0001")
    _wait_for_version(client, "v0001")


def test_new_base_loads_beside_the_old_one_and_serves_identically(serve_models, tmp_path):
    """A version on a different base GGUF path is a full load (not an adapter swap); the same weights must
    give the same greedy output as the adapter swap did, and requests during the load keep working."""
    import shutil
    import threading

    from forge_pipeline.atomic import write_json_atomic
    from forge_pipeline.export.manifest import describe_file, read_manifest
    from forge_pipeline.serve.models import ModelHost

    manifest_path = tmp_path / "serve" / "adapter_manifest.json"
    write_manifest(manifest_path, serve_models, "v0002")
    host = ModelHost(manifest_path, n_ctx=512)

    def greedy() -> tuple[str, str]:
        with host.session() as session:
            text = session.llm.create_completion("The migration plan", max_tokens=12, temperature=0)
            return session.version, text["choices"][0]["text"]

    try:
        assert host.reload()["kind"] == "base_load"
        on_swapped_adapter = greedy()
        copy = tmp_path / "base-copy.gguf"
        shutil.copyfile(serve_models.base_gguf, copy)
        manifest = read_manifest(manifest_path)
        entry = json.loads(json.dumps(manifest["versions"]["v0002"]))
        entry["version"] = "v0003"
        entry["files"]["base_gguf"] = describe_file(copy, manifest_path)
        manifest["versions"]["v0003"] = entry
        manifest["current"] = "v0003"
        write_json_atomic(manifest_path, manifest)
        results, stop = [], threading.Event()

        def traffic():
            while not stop.is_set():
                results.append(greedy())

        worker = threading.Thread(target=traffic)
        worker.start()
        try:
            outcome = host.reload()
        finally:
            stop.set()
            worker.join()
        assert outcome["kind"] == "base_load" and outcome["from"] == "v0002" and outcome["to"] == "v0003"
        assert host.health()["base_gguf"] == str(copy.resolve())
        assert greedy() == ("v0003", on_swapped_adapter[1])
        assert results and all(text == on_swapped_adapter[1] for _, text in results)
    finally:
        host.close()


LONG_STREAM = json.dumps(
    {"messages": [{"role": "user", "content": "Write a long reflection."}], "max_tokens": 400, "stream": True}
).encode()


def _chat_within(port: int, timeout: float) -> httpx.Response:
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=timeout) as fresh:
        return fresh.post(
            "/v1/chat/completions",
            json={"messages": [{"role": "user", "content": "Still there?"}], "max_tokens": 4, "temperature": 0},
        )


def test_clients_gone_before_the_first_byte_do_not_lock_the_model(server):
    for _ in range(5):
        hang_up_before_first_byte(server["port"], LONG_STREAM)
    for _ in range(3):  # each must be answered, within a bound, after the abandoned streams
        response = _chat_within(server["port"], timeout=20)
        assert response.status_code == 200, response.text
    assert server["client"].get("/health").json()["status"] == "ok"


def test_clients_gone_during_a_swap_do_not_stall_the_swap_or_later_requests(server):
    client, manifest, models = server["client"], server["manifest"], server["models"]
    try:
        for version in ("v0002", "v0001", "v0002"):
            for _ in range(3):
                hang_up_before_first_byte(server["port"], LONG_STREAM)
            write_manifest(manifest, models, version)  # the swap takes the model lock too
            _wait_for_version(client, version, timeout=20)
            response = _chat_within(server["port"], timeout=20)
            assert response.status_code == 200 and response.headers["x-forge-model-version"] == version
    finally:
        write_manifest(manifest, models, "v0001")
        _wait_for_version(client, "v0001")


def _long_json_stream(max_tokens: int) -> dict:
    # The grammar allows no end before max_tokens characters: long whatever the random model samples.
    return {
        "messages": [{"role": "user", "content": "Write a long reflection."}],
        "max_tokens": max_tokens,
        "stream": True,
        "response_format": {
            "type": "json_schema",
            "json_schema": {"name": "long", "schema": {"type": "string", "minLength": max_tokens}},
        },
    }


def test_sigterm_stops_generation_at_the_next_token_and_every_client_gets_an_openai_error(serve_models, tmp_path):
    """`forge serve` (the CLI) on SIGTERM with a 3,000-token stream in flight, a request and a stream queued
    behind it (one context), and clients that vanished: the stream ends with an SSE error event, the queued
    ones get a 503 JSON error (OpenAI's shape, code server_shutting_down), and the server exits within
    serve.shutdown_timeout_s. Bug: it ran the generation on, exited late, and answered bare `500 Internal
    Server Error` text."""
    write_manifest(tmp_path / "serve" / "adapter_manifest.json", serve_models, "v0002")
    timeout_s = 5.0
    process, client, port, _ = start_server(
        tmp_path,
        {
            "FORGE_SERVE__SHUTDOWN_TIMEOUT_S": str(timeout_s),
            "FORGE_SERVE__EMBEDDINGS": "false",
            "FORGE_SERVE__N_CTX": "4096",
            "FORGE_SERVE__PARALLEL_REQUESTS": "1",
        },
        cli=True,
    )
    outcome: dict[str, object] = {}
    streaming = threading.Event()

    def long_stream():
        events = []
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60) as own:
            try:
                with own.stream("POST", "/v1/chat/completions", json=_long_json_stream(3000)) as response:
                    for line in response.iter_lines():
                        if line.startswith("data: "):
                            events.append(line[len("data: ") :])
                            streaming.set()
            except httpx.TransportError as err:
                events.append(f"transport error: {err}")
        outcome["stream"] = events

    def queued(name: str, stream: bool):
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60) as own:
            try:
                if stream:
                    with own.stream("POST", "/v1/chat/completions", json=_long_json_stream(50)) as response:
                        response.read()
                else:
                    response = own.post("/v1/completions", json={"prompt": "Once", "max_tokens": 50})
                outcome[name] = (response.status_code, response.headers.get("content-type"), response.content)
            except httpx.TransportError as err:
                outcome[name] = ("transport error", None, str(err).encode())

    threads = [threading.Thread(target=long_stream, daemon=True)]
    try:
        assert client.get("/health").json()["model_version"] == "v0002"
        threads[0].start()
        assert streaming.wait(timeout=60), "no stream started"
        for _ in range(3):
            hang_up_before_first_byte(port, LONG_STREAM)
        threads += [
            threading.Thread(target=queued, args=("queued", False), daemon=True),
            threading.Thread(target=queued, args=("queued_stream", True), daemon=True),
        ]
        for thread in threads[1:]:
            thread.start()
        time.sleep(0.5)  # both are waiting for the one context
        assert "stream" not in outcome, "the long stream ended before SIGTERM: make it longer"
    finally:
        client.close()
        took = stop(process, within_s=20)
    for thread in threads:
        thread.join(timeout=10)
    assert took < timeout_s, f"SIGTERM took {took:.1f} s (serve.shutdown_timeout_s {timeout_s})"
    events = outcome["stream"]
    assert events[-1] != "[DONE]" and json.loads(events[-1])["error"]["code"] == "server_shutting_down", events[-3:]
    assert len(events) < 3000  # stopped well before max_tokens
    for name in ("queued", "queued_stream"):
        status, content_type, body = outcome[name]
        assert status == 503 and content_type == "application/json", (name, status, body[:200])
        assert json.loads(body)["error"]["code"] == "server_shutting_down"


def _pinned_completion(client, version: str) -> tuple[int, str | None, str]:
    response = client.post(
        "/v1/completions",
        json={"model": version, "prompt": "The migration plan", "max_tokens": 6, "temperature": 0},
    )
    text = response.json()["choices"][0]["text"] if response.status_code == 200 else response.text
    return response.status_code, response.headers.get("x-forge-model-version"), text


def test_pinned_requests_are_answered_by_their_version_while_current_moves_and_the_manifest_breaks(server):
    """200 requests pinned to v0001 or v0002, four at a time, while `current` moves between the two (as `forge
    rollback` does) and the manifest is now and then unreadable: each is answered by the version it named (label
    and greedy text). Bug: a swap changed the loaded model in place while a pinned request waited, and a broken
    manifest made every request naming the non-serving version a 404."""
    client, manifest, models = server["client"], server["manifest"], server["models"]
    original = manifest.read_text()
    expected = {version: _pinned_completion(client, version)[2] for version in ("v0001", "v0002")}
    assert expected["v0001"] != expected["v0002"]  # different adapters: a wrong answer is visible
    results = []

    def pinned(i: int):
        with httpx.Client(base_url=client.base_url, timeout=60) as own:
            return (("v0001", "v0002")[i % 2], *_pinned_completion(own, ("v0001", "v0002")[i % 2]))

    states = 0
    try:
        with concurrent.futures.ThreadPoolExecutor(4) as pool:
            futures = [pool.submit(pinned, i) for i in range(200)]
            # Bounded: at most 300 manifest changes, 50 ms apart, while requests are still running.
            while states < 300 and not all(f.done() for f in futures):
                state = states % 3
                if state == 2:
                    manifest.write_text("{ truncated")
                else:
                    write_manifest(manifest, models, ("v0002", "v0001")[state])
                states += 1
                time.sleep(0.05)
            results = [f.result() for f in futures]
    finally:
        manifest.write_text(original)
    assert states >= 6, "current did not move while the requests ran"
    wrong = [r for r in results if r[1] != 200 or r[2] != r[0] or r[3] != expected[r[0]]]
    assert not wrong, f"{len(wrong)} of {len(results)} not answered by the version they named: {wrong[:5]}"
    _wait_for_version(client, "v0001")


def test_parallel_contexts_generate_at_once_and_each_keeps_its_version_while_current_moves(serve_models, tmp_path):
    """serve.parallel_requests contexts: two requests hold two contexts at once, a third waits for one; a swap
    of `current` while they run changes neither (each has its version's adapter set on its own context)."""
    from forge_pipeline.serve.models import ModelHost

    manifest_path = tmp_path / "serve" / "adapter_manifest.json"
    write_manifest(manifest_path, serve_models, "v0001")
    host = ModelHost(manifest_path, n_ctx=256, embeddings=False, parallel=2)

    def greedy(llm) -> str:
        return llm.create_completion("The migration plan", max_tokens=8, temperature=0)["choices"][0]["text"]

    try:
        host.reload()
        expected = {}
        for version in ("v0001", "v0002"):
            with host.session(version=version) as session:
                expected[version] = greedy(session.llm)
        assert expected["v0001"] != expected["v0002"]
        third_in = threading.Event()

        def third():
            with host.session(version="v0002") as session:
                third_in.set()
                assert session.version == "v0002"

        with host.session(version="v0001") as first, host.session() as second:
            assert first.llm is not second.llm and (first.version, second.version) == ("v0001", "v0001")
            waiting = threading.Thread(target=third)
            waiting.start()
            assert not third_in.wait(0.5), "a third request got a context while both were in use"
            write_manifest(manifest_path, serve_models, "v0002")
            assert host.reload()["kind"] == "adapter_swap"
            assert greedy(first.llm) == expected["v0001"] and greedy(second.llm) == expected["v0001"]
        waiting.join(timeout=30)
        assert third_in.is_set()
        with host.session() as session:  # the next default request sees the new current
            assert session.version == "v0002" and greedy(session.llm) == expected["v0002"]
    finally:
        host.close()
