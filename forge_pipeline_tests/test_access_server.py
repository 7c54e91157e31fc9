"""Access control of `forge serve` (issue 8), in process: the real FastAPI app and middleware, no model loaded.

Already covered elsewhere and not repeated: the basic token guard on /admin/reload and the fine-tune routes
(test_serve_core.py::test_admin_routes_refuse_non_loopback_clients_without_token); URL-encoded traversal
and 413 on the real uvicorn server (test_serve_server.py, slow). This file checks every route the app has
(including routes other modules add later), traversal on every GET route with a path parameter, and the
body limit at its exact boundary, on chunked and on malformed Content-Length bodies, on every POST route.
"""

from __future__ import annotations

import json
import socket

import pytest
from fastapi.testclient import TestClient

from forge_pipeline.atomic import write_json_atomic
from forge_pipeline.export.manifest import describe_file, empty_manifest
from forge_pipeline.serve.app import create_app
from forge_pipeline.settings import load_settings

TOKEN = "tok-3f9a1c"
MAX_BYTES = 4096
SECRET = b"TOP-SECRET-DO-NOT-SERVE"
ADMIN_PREFIXES = ("/admin", "/v1/files", "/v1/fine_tuning")


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def app(tmp_path):
    root = tmp_path / "data_root"
    settings = load_settings(
        data_root=root,
        serve={
            "admin_token": TOKEN,
            "max_request_bytes": MAX_BYTES,
            "embeddings": False,
            # Nothing listens: a request that gets past the guard fails fast with 502 instead of reaching Dagster.
            "dagster_url": f"http://127.0.0.1:{_closed_port()}",
            "dagster_timeout_s": 2,
        },
    )
    settings.paths.ensure()
    # A manifest with one version whose files are small stand-ins: downloads do not load models.
    exports = settings.paths.exports / "run1"
    exports.mkdir(parents=True)
    (exports / "merged-q4_k_m.gguf").write_bytes(b"GGUF" + b"\1" * 64)
    (exports / "adapter-f16.gguf").write_bytes(b"GGUF" + b"\2" * 64)
    manifest = empty_manifest()
    manifest["versions"]["v0001"] = {
        "version": "v0001",
        "promoted": True,
        "files": {
            "merged_gguf": describe_file(exports / "merged-q4_k_m.gguf", settings.paths.manifest),
            "adapter_gguf": describe_file(exports / "adapter-f16.gguf", settings.paths.manifest),
            "base_gguf": None,
        },
    }
    manifest["current"], manifest["history"] = "v0001", ["v0001"]
    write_json_atomic(settings.paths.manifest, manifest)
    # Files a traversal would aim at: beside the data root and inside it, outside the manifest.
    (tmp_path / "secret.txt").write_bytes(SECRET)
    (root / "secret.gguf").write_bytes(SECRET)
    return {"app": create_app(settings, watch=False), "settings": settings, "tmp": tmp_path}


def _routes(app) -> list[tuple[str, str]]:
    """(method, path) of every operation the app serves, from its OpenAPI schema (so included routers count)."""
    return sorted((method.upper(), path) for path, ops in app.openapi()["paths"].items() for method in ops)


def _fill(path: str, value: str = "x") -> str:
    import re

    return re.sub(r"\{[^}]+\}", value, path)


def test_every_admin_and_fine_tune_route_refuses_remote_clients_without_the_token(app):
    routes = [(m, p) for m, p in _routes(app["app"]) if p.startswith(ADMIN_PREFIXES)]
    assert {
        ("POST", "/admin/reload"),
        ("POST", "/v1/files"),
        ("GET", "/v1/files"),
        ("GET", "/v1/files/{file_id}"),
        ("GET", "/v1/files/{file_id}/content"),
        ("DELETE", "/v1/files/{file_id}"),
        ("POST", "/v1/fine_tuning/jobs"),
        ("GET", "/v1/fine_tuning/jobs"),
        ("GET", "/v1/fine_tuning/jobs/{job_id}"),
        ("POST", "/v1/fine_tuning/jobs/{job_id}/cancel"),
        ("GET", "/v1/fine_tuning/jobs/{job_id}/events"),
        ("GET", "/v1/fine_tuning/jobs/{job_id}/checkpoints"),
    } <= set(routes)
    remote = TestClient(app["app"], client=("203.0.113.7", 40000))
    refused_headers = [
        {},
        {"Authorization": "Bearer wrong"},
        {"Authorization": TOKEN},  # no scheme
        {"Authorization": f"Bearer {TOKEN} "},
        {"Authorization": f"bearer{TOKEN}"},
        {"X-Forwarded-For": "127.0.0.1"},
        {"Authorization": f"Basic {TOKEN}"},
    ]
    for method, path in routes:
        url = _fill(path)
        for headers in refused_headers:
            response = remote.request(method, url, headers=headers, json={} if method == "POST" else None)
            assert response.status_code == 403, (method, url, headers, response.status_code)
        # The token in the query string is not a token either (it would end up in access logs).
        assert remote.request(method, url + f"?token={TOKEN}").status_code == 403
        # With the right token the guard lets the request through (to 502/409: no Dagster, no model here).
        allowed = remote.request(
            method, url, headers={"Authorization": f"Bearer {TOKEN}"}, json={} if method == "POST" else None
        )
        assert allowed.status_code not in (401, 403), (method, url, allowed.status_code)
    for loopback in ("127.0.0.1", "::1", "127.8.9.10"):
        # A reverse proxy on the same machine makes every client loopback: no token, no admin.
        local = TestClient(app["app"], client=(loopback, 40000))
        assert local.post("/admin/reload").status_code == 403, loopback
        trusting = load_settings(data_root=app["tmp"] / "trusting", serve={"admin_loopback_without_token": True})
        local = TestClient(create_app(trusting, watch=False), client=(loopback, 40000))
        assert local.post("/admin/reload").status_code != 403, loopback


def test_without_a_configured_token_remote_admin_access_is_impossible(tmp_path):
    settings = load_settings(data_root=tmp_path, serve={"admin_token": None})
    remote = TestClient(create_app(settings, watch=False), client=("198.51.100.1", 5000))
    for header in ("Bearer None", "Bearer ", "Bearer null", ""):
        assert remote.post("/admin/reload", headers={"Authorization": header}).status_code == 403, header


def test_public_routes_stay_public(app):
    remote = TestClient(app["app"], client=("203.0.113.7", 40000))
    assert remote.get("/v1/models").status_code == 200
    assert remote.get("/v1/models/v0001/gguf").content.startswith(b"GGUF")
    assert remote.post("/v1/interactions", json={"messages": [{"role": "user", "content": "hi"}]}).status_code == 201


HOSTILE = [
    "..",
    "../..",
    "..%2F..%2Fsecret.txt",
    "%2e%2e%2f%2e%2e%2fsecret.txt",
    "..%5C..%5Csecret.txt",
    "%2Fetc%2Fpasswd",
    "....%2F%2Fsecret.txt",
    "secret.gguf",
    "v0001%00",
    "v0001%2F..%2F..%2Fsecret.gguf",
    "v0001/../../secret.gguf",
    "%252e%252e%252fsecret.txt",
    "x" * 5000,
]


def test_no_get_route_with_a_path_parameter_serves_a_file_outside_the_manifest(app):
    client = TestClient(app["app"], client=("127.0.0.1", 40000))  # loopback: even the trusted client gets nothing
    routes = [p for m, p in _routes(app["app"]) if m == "GET" and "{" in p and not p.startswith(ADMIN_PREFIXES)]
    assert {
        "/v1/models/{version}/gguf",
        "/v1/models/{version}/adapter",
        "/v1/models/{version}/base",
        "/v1/models/{model}",
    } <= set(routes)
    for path in routes:
        for hostile in HOSTILE:
            response = client.get(_fill(path, hostile))
            assert response.status_code in (400, 404, 405, 409, 422), (path, hostile, response.status_code)
            assert SECRET not in response.content and b"root:" not in response.content, (path, hostile)


def test_a_tampered_manifest_cannot_make_downloads_serve_other_files(app):
    settings = app["settings"]
    manifest = json.loads(settings.paths.manifest.read_text())
    # Someone points v0002 at a non-GGUF file outside the data root, with its correct sha256.
    manifest["versions"]["v0002"] = {
        "version": "v0002",
        "files": {"merged_gguf": describe_file(app["tmp"] / "secret.txt", settings.paths.manifest)},
    }
    # ...and v0003 at a GGUF whose content changed after the manifest was written.
    manifest["versions"]["v0003"] = json.loads(json.dumps(manifest["versions"]["v0001"]))
    write_json_atomic(settings.paths.manifest, manifest)
    (settings.paths.exports / "run1" / "adapter-f16.gguf").write_bytes(b"GGUF" + b"\3" * 64)
    client = TestClient(app["app"], client=("127.0.0.1", 40000))
    response = client.get("/v1/models/v0002/gguf")
    assert response.status_code == 404 and SECRET not in response.content
    assert "not a .gguf file" in response.json()["error"]["message"]
    corrupt = client.get("/v1/models/v0003/adapter")
    assert corrupt.status_code == 409 and "sha256" in corrupt.json()["error"]["message"]


def test_body_limit_on_every_post_route(app):
    # /v1/files has a limit of its own (next test).
    posts = [p for m, p in _routes(app["app"]) if m == "POST" and p != "/v1/files"]
    assert {"/v1/chat/completions", "/v1/completions", "/v1/interactions", "/admin/reload"} <= set(posts)
    client = TestClient(app["app"], client=("127.0.0.1", 40000))
    for path in posts:
        url = _fill(path)
        response = client.post(url, content=b"x" * (MAX_BYTES + 1), headers={"content-type": "application/json"})
        assert response.status_code == 413, (url, response.status_code)
        assert f"serve.max_request_bytes ({MAX_BYTES})" in response.json()["error"]["message"]

        def chunks():  # no Content-Length at all: the middleware must count
            for _ in range(5):
                yield b"y" * (MAX_BYTES // 4)

        assert client.post(url, content=chunks()).status_code == 413, url


def test_file_uploads_have_their_own_limit_counted_as_they_stream(tmp_path):
    """POST /v1/files takes files over serve.max_request_bytes (the chat limit) up to serve.max_file_bytes,
    declared or chunked; over it, a 413 naming serve.max_file_bytes."""
    settings = load_settings(
        data_root=tmp_path / "root",
        serve={
            "max_request_bytes": MAX_BYTES,
            "max_file_bytes": 40 * MAX_BYTES,
            "embeddings": False,
            "admin_loopback_without_token": True,
        },
    )
    settings.paths.ensure()
    client = TestClient(create_app(settings, watch=False), client=("127.0.0.1", 40000))
    line = json.dumps({"messages": [{"role": "user", "content": "q" * 200}, {"role": "assistant", "content": "a"}]})
    body = ((line + "\n") * (10 * MAX_BYTES // len(line))).encode()  # 10x the chat limit
    accepted = client.post("/v1/files", files={"file": ("big.jsonl", body)}, data={"purpose": "fine-tune"})
    assert accepted.status_code == 200 and accepted.json()["bytes"] == len(body), accepted.text
    too_big = body * 5
    refused = client.post("/v1/files", files={"file": ("huge.jsonl", too_big)}, data={"purpose": "fine-tune"})
    assert (
        refused.status_code == 413 and f"serve.max_file_bytes ({40 * MAX_BYTES})" in refused.json()["error"]["message"]
    )
    # Chunked (no Content-Length): counted while the route reads it.
    boundary = "forgeboundary"
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="purpose"\r\n\r\nfine-tune\r\n'
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="huge.jsonl"\r\n'
        "Content-Type: application/jsonl\r\n\r\n"
    ).encode()

    def chunked():
        yield head
        for start in range(0, len(too_big), 1 << 16):
            yield too_big[start : start + (1 << 16)]
        yield f"\r\n--{boundary}--\r\n".encode()

    streamed = client.post(
        "/v1/files", content=chunked(), headers={"content-type": f"multipart/form-data; boundary={boundary}"}
    )
    assert streamed.status_code == 413 and "serve.max_file_bytes" in streamed.json()["error"]["message"]
    assert client.post("/v1/interactions", content=b"x" * (MAX_BYTES + 1)).status_code == 413  # chat limit unchanged


def test_body_limit_boundary_and_malformed_content_length(app):
    client = TestClient(app["app"], client=("127.0.0.1", 40000))
    message = {"messages": [{"role": "user", "content": ""}]}
    padding = MAX_BYTES - len(json.dumps(message, separators=(",", ":")).encode())
    message["messages"][0]["content"] = "z" * padding
    exact = json.dumps(message, separators=(",", ":")).encode()
    assert len(exact) == MAX_BYTES
    headers = {"content-type": "application/json"}
    assert client.post("/v1/interactions", content=exact, headers=headers).status_code == 201
    over = exact.replace(b'"}]}', b'z"}]}')
    assert client.post("/v1/interactions", content=over, headers=headers).status_code == 413


def test_non_numeric_content_length_is_counted_not_trusted():
    # Bug: a Content-Length that was not all digits skipped the check and the body reached the route uncounted.
    # uvicorn's parsers reject such a header themselves; the middleware must not rely on that.
    from forge_pipeline.serve.app import BodyLimit

    reached = []

    async def inner(scope, receive, send):
        reached.append((await receive())["body"])

    sent = []

    async def send(message):
        sent.append(message)

    body = b"q" * (MAX_BYTES * 2)
    messages = iter([{"type": "http.request", "body": body, "more_body": False}])

    async def receive():
        return next(messages)

    scope = {
        "type": "http",
        "method": "POST",
        "path": "/v1/interactions",
        "headers": [(b"content-length", b"+1"), (b"content-type", b"application/json")],
    }
    import anyio

    anyio.run(BodyLimit(inner, MAX_BYTES), scope, receive, send)
    assert not reached and sent[0]["status"] == 413
