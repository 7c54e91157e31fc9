"""The playground's own routes, without a browser or a model: the page, its assets, its headers and the status
figures (test_playground_ui.py drives the page itself in Chromium)."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from fastapi.testclient import TestClient

from forge_pipeline.atomic import write_json_atomic
from forge_pipeline.export.manifest import empty_manifest
from forge_pipeline.records import ChatMessage
from forge_pipeline.serve.app import create_app
from forge_pipeline.serve.interactions import InteractionIn, InteractionStore
from forge_pipeline.serve.playground_routes import PLAYGROUND_DIR
from forge_pipeline.settings import load_settings


def _client(tmp_path, **serve) -> tuple[TestClient, object]:
    settings = load_settings(data_root=tmp_path / "root", serve=serve)
    # No `with`: the lifespan (which loads a model) does not run; the playground's routes need none.
    return TestClient(create_app(settings, watch=False), client=("10.0.0.7", 50000)), settings


def test_page_is_served_with_a_policy_that_allows_only_its_own_script_and_style(tmp_path):
    client, _ = _client(tmp_path)
    page = client.get("/playground")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    policy = page.headers["content-security-policy"]
    assert "script-src 'self'" in policy and "default-src 'none'" in policy and "unsafe-inline" not in policy
    assert page.headers["x-content-type-options"] == "nosniff"
    assert 'src="/playground/static/app.js"' in page.text and 'href="/playground/static/style.css"' in page.text
    assert "<script>" not in page.text and "style=" not in page.text  # nothing inline the policy would block
    slash = client.get("/playground/", follow_redirects=False)
    assert slash.status_code == 308 and slash.headers["location"] == "/playground"


def test_assets_have_their_content_types_and_nothing_outside_the_folder_is_served(tmp_path):
    client, _ = _client(tmp_path)
    script = client.get("/playground/static/app.js")
    assert script.status_code == 200 and script.headers["content-type"].split(";")[0] in (
        "text/javascript",
        "application/javascript",
    )
    style = client.get("/playground/static/style.css")
    assert style.status_code == 200 and style.headers["content-type"].startswith("text/css")
    assert client.get("/playground/static/../playground_routes.py").status_code == 404
    assert client.get("/playground/static/%2e%2e/app.py").status_code == 404


def test_the_script_never_builds_html_from_strings():
    """The page's safety rule (model output and notes are text): no HTML-parsing DOM sink in the script."""
    script = (PLAYGROUND_DIR / "app.js").read_text(encoding="utf-8")
    sinks = re.findall(r"innerHTML|outerHTML|insertAdjacentHTML|document\.write|eval\(|new Function", script)
    assert sinks == []


def test_status_counts_interactions_received_after_the_newest_version(tmp_path):
    client, settings = _client(tmp_path)
    trained_at = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
    manifest = empty_manifest()
    for version, created in (("v0001", trained_at - timedelta(days=3)), ("v0002", trained_at)):
        manifest["versions"][version] = {
            "version": version,
            "created_at": created.isoformat().replace("+00:00", "Z"),
            "files": {},
        }
    write_json_atomic(settings.paths.manifest, manifest)
    store = InteractionStore(settings.paths.interactions)
    record = InteractionIn(messages=[ChatMessage(role="user", content="hi")])
    for when in (
        trained_at - timedelta(days=1),  # an earlier day's file: not read
        trained_at - timedelta(minutes=5),  # same day, before the training
        trained_at + timedelta(minutes=5),
        trained_at + timedelta(days=1, hours=1),
    ):
        store.append(record, when=when)
    # v0002 is the newest version but the gate did not promote it: the status says so beside what serves.
    manifest["versions"]["v0001"]["promoted"] = True
    manifest["current"] = "v0001"
    write_json_atomic(settings.paths.manifest, manifest)
    status = client.get("/playground/status").json()
    assert status["last_training"] == {
        "version": "v0002",
        "created_at": "2026-03-02T12:00:00Z",
        "promoted": False,
        "current": "v0001",
        "candidate": None,
    }
    assert status["interactions_since_training"] == 2


def test_status_says_when_this_client_needs_the_admin_token(tmp_path):
    client, _ = _client(tmp_path / "a", admin_token="secret")
    assert client.get("/playground/status").json() == {
        "last_training": None,
        "interactions_since_training": 0,
        "admin": "token_required",
    }
    assert client.get("/playground/status", headers={"authorization": "Bearer secret"}).json()["admin"] == "ok"
    assert client.get("/playground/status", headers={"authorization": "Bearer wrong"}).json()["admin"] == (
        "token_required"
    )


def test_train_now_needs_no_training_file(tmp_path):
    """The playground's job request names no file: it passes validation and reaches Dagster (here nothing
    listens, so the answer is the Dagster client's 502, not a 400 about training_file)."""
    client, _ = _client(tmp_path, admin_token="secret", dagster_url="http://127.0.0.1:9", dagster_timeout_s=2)
    response = client.post(
        "/v1/fine_tuning/jobs",
        json={"model": "forge", "suffix": "playground"},
        headers={"authorization": "Bearer secret"},
    )
    assert response.status_code == 502, response.text
