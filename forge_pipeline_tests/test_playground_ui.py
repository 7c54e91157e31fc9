"""The playground (`/playground`) as a person uses it, in headless Chromium against a real `forge serve` process
on the session's tiny GGUF base and two real LoRA adapters: streamed chat, ratings, a correction, a side-by-side
choice, text that stays text, and "train now" followed to the hot-swap.

This module's server requires the admin token (loopback is not trusted), as off-loopback clients see it, and
launches fine-tuning jobs on the session's dagster-webserver (conftest.py `serve_dagster`). Its retrain job is
the serve stage's real `forge_retrain_job` over stand-in assets (the whole tiny-model chain is minutes on CPU);
the test publishes the version that chain would publish at its end, and the page must follow the job through
the fine-tuning route to that version and show it without a reload.
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import pytest

from forge_pipeline.atomic import write_json_atomic
from forge_pipeline.export.manifest import read_manifest
from forge_pipeline_tests.serve_dagster_location import CONFIG_LOG_PREFIX
from forge_pipeline_tests.serve_fixtures import DAGSTER_LOCATION, start_server, stop
from forge_pipeline_tests.ui_support import chromium_page, save_screenshot, wait_until

pytestmark = [pytest.mark.ui, pytest.mark.slow]

TOKEN = "playground-token"
ADMIN = {"authorization": f"Bearer {TOKEN}"}
INJECTION = '<img src=x onerror="window.__pwned=1">'
EVALUATION = {
    "v0001": {"base_perplexity": 41.5, "tuned_perplexity": 30.25, "relative_improvement": 0.27},
    "v0002": {"base_perplexity": 41.5, "tuned_perplexity": 28.0, "relative_improvement": 0.33},
}


@pytest.fixture(scope="module")
def playground(serve_models, serve_dagster, tmp_path_factory):
    from forge_pipeline_tests.gguf_fixtures import write_manifest

    root = tmp_path_factory.mktemp("playground_root")
    manifest_path = root / "serve" / "adapter_manifest.json"
    manifest = write_manifest(manifest_path, serve_models, "v0001")
    for version, figures in EVALUATION.items():
        manifest["versions"][version]["evaluation"] = figures
    manifest["candidate"] = {"version": "v0002", "traffic_share": 0.5}
    write_json_atomic(manifest_path, manifest)
    process, client, port, _ = start_server(
        root,
        {
            "FORGE_SERVE__ADMIN_TOKEN": TOKEN,
            "FORGE_SERVE__ADMIN_LOOPBACK_WITHOUT_TOKEN": "false",
            "FORGE_SERVE__LOG_SERVED_CHATS": "false",  # the interactions folder holds only what the page records
            "FORGE_SERVE__EMBEDDINGS": "false",
            "FORGE_SERVE__DAGSTER_URL": serve_dagster,
            "FORGE_SERVE__DAGSTER_LOCATION": DAGSTER_LOCATION,
            "FORGE_SERVE__FINE_TUNING_JOB": "forge_retrain_job",
            "FORGE_SERVE__DAGSTER_TIMEOUT_S": "60",  # a launch waits for the run process to start: seconds under load
        },
    )
    try:
        yield {"url": f"http://127.0.0.1:{port}", "root": root, "manifest": manifest_path, "client": client}
    finally:
        client.close()
        stop(process)


def _interactions(root: Path) -> list[dict]:
    return [
        json.loads(line)
        for path in sorted((root / "interactions").glob("*.jsonl"))
        for line in path.read_text(encoding="utf-8").splitlines()
        if line.strip()
    ]


def _as_shown(text: str) -> str:
    """What the page shows for `text`: control characters as their Unicode pictures (ESC as U+241B)."""
    return re.sub(r"[\x00-\x08\x0b-\x1f\x7f]", lambda m: "\u2421" if m[0] == "\x7f" else chr(0x2400 + ord(m[0])), text)


def _send(page, text: str) -> None:
    """Types into the message box and sends with Enter, as a person does."""
    page.get_by_label("Message").fill(text)
    page.get_by_label("Message").press("Enter")


# Waits use Playwright's expect (no string evaluated in the page: the page's CSP forbids eval, which
# page.wait_for_function with a string needs).
def _open(page, url: str) -> None:
    from playwright.sync_api import expect

    page.goto(f"{url}/playground")
    expect(page.locator("#current-version")).to_have_text(re.compile(r"^v\d{4}$"))  # models listed, pickers filled


def _done_reply(page, index: int):
    """The index-th finished reply (0-based), once the page has at least that many (side by side can finish
    both of its replies between two polls, so an exact count would be a race)."""
    reply = page.locator('article.reply[data-state="done"]').nth(index)
    reply.wait_for(timeout=90_000)
    return reply


def test_chat_rate_correct_and_choose_are_recorded_with_the_versions_that_answered(playground, tmp_path):
    before = _interactions(playground["root"])
    with chromium_page(viewport=(1280, 800)) as page:
        from playwright.sync_api import expect  # after chromium_page, which skips (or fails) without playwright

        _open(page, playground["url"])
        assert page.locator("#current-version").text_content() == "v0001"
        assert page.locator("#status-current-eval").text_content() == (
            "held-out perplexity 30.25 vs base 41.50 (-27.1%)"
        )
        assert page.locator("#status-candidate").text_content() == "v0002"
        assert page.locator("#status-job").text_content() == "enter the admin token to see jobs"
        # The token can be entered to see jobs without starting one.
        page.get_by_role("button", name="Enter admin token").click()
        page.get_by_label("Admin token").fill(TOKEN)
        page.get_by_label("Admin token").press("Enter")
        expect(page.locator("#train-message")).to_have_text("Token set for this tab; no job was started.")
        expect(page.locator("#status-job")).to_have_text("none yet")
        assert page.get_by_role("button", name="Enter admin token").is_hidden()
        assert not list((playground["root"] / "serve" / "fine_tuning").glob("ftjob-*.json"))

        page.get_by_label("System prompt").fill(f"You are terse. {INJECTION}")
        page.get_by_label("Temperature").fill("0.9")
        page.get_by_label("Max tokens").fill("24")

        # 1. v0002, rated good (keyboard: focus the button, press Space).
        page.get_by_label("Version", exact=True).select_option("v0002")
        _send(page, f"Say hello {INJECTION}")
        first = _done_reply(page, 0)
        assert first.get_attribute("data-version") == "v0002"
        assert first.locator(".version").text_content() == "v0002"
        assert int(first.get_attribute("data-chunks")) > 1  # it arrived as a stream, piece by piece
        first_id = first.get_attribute("data-response-id")
        first.get_by_role("button", name="Good reply").focus()
        page.keyboard.press("Space")
        expect(first.locator(".confirm")).to_have_text(re.compile(r"^Saved: rated good for v0002 \("))

        # 2. the server's choice (current or the A/B candidate), corrected.
        page.get_by_label("Version", exact=True).select_option("")
        _send(page, "And now?")
        second = _done_reply(page, 1)
        second_version = second.get_attribute("data-version")
        assert second_version in ("v0001", "v0002") and second.locator(".version").text_content() == second_version
        second_id = second.get_attribute("data-response-id")
        second.get_by_role("button", name="Correct this reply").click()
        correction = f"A better answer {INJECTION}"
        second.get_by_label("Corrected reply").fill(correction)
        second.get_by_role("button", name="Save correction").click()
        second.locator(".corrected").wait_for()
        assert second.locator(".corrected .text").text_content() == correction  # shown as typed, not as markup
        expect(second.locator(".confirm")).to_have_text(re.compile(rf"^Saved: correction of {second_version}'s reply"))

        # 3. side by side, v0001 against v0002: choose B.
        page.get_by_label("Version", exact=True).select_option("v0001")
        page.get_by_label("Side by side").check()
        page.get_by_label("Second version").select_option("v0002")
        _send(page, "Which is better?")
        a, b = _done_reply(page, 2), _done_reply(page, 3)
        assert (a.get_attribute("data-version"), b.get_attribute("data-version")) == ("v0001", "v0002")
        page.get_by_role("button", name="Choose reply B").click()
        expect(page.locator(".choose .confirm")).to_have_text(re.compile(r"^Saved: you chose B \(v0002\)"))
        replies = [a.locator(".text").first.text_content(), b.locator(".text").first.text_content()]

        # One consistent status: the newest version (v0002, the A/B candidate) is named with what serves.
        expect(page.locator("#status-interactions")).to_have_text(
            f"{len(before) + 3} since v0002 was trained (the A/B candidate; serving v0001)"
        )

        # Text stays text: the user turn shows the tag literally and no element was made from it.
        assert page.locator(".turn.user .text").first.text_content() == f"Say hello {INJECTION}"
        assert page.locator("#chat img").count() == 0
        assert page.evaluate("window.__pwned") is None
        assert page.evaluate("document.documentElement.scrollWidth") <= 1280  # no sideways scrolling at 1280x800
        save_screenshot(page, tmp_path, "playground_desktop", readme_name="playground.png")

    new = _interactions(playground["root"])[len(before) :]
    assert len(new) == 3, new
    rating, corrected, choice = new
    assert rating["rating"] == "up" and rating["model_version"] == "v0002"
    assert rating["response_id"] == first_id and corrected["response_id"] == second_id and "response_id" not in choice
    assert [m["role"] for m in rating["messages"]] == ["system", "user", "assistant"]
    assert rating["messages"][0]["content"] == f"You are terse. {INJECTION}"
    assert corrected["corrected_reply"] == correction and corrected["model_version"] == second_version
    assert [m["role"] for m in corrected["messages"]] == ["system", "user", "assistant", "user", "assistant"]
    assert choice["choice"]["chosen"] == 1 and choice["choice"]["model_versions"] == ["v0001", "v0002"]
    assert [_as_shown(r) for r in choice["choice"]["replies"]] == replies  # the replies the person saw
    assert choice["messages"][-1] == {"role": "user", "content": "Which is better?"}
    assert all(r.get("rating") is None for r in (corrected, choice))


def test_model_output_with_markup_and_control_characters_is_shown_as_text_on_a_phone(playground, tmp_path):
    """The tiny model cannot be made to write HTML, so this stream is served by the test (page.route): the page's
    rendering of a reply is what is checked, at 390 px width."""
    chunks = [
        {"id": "chatcmpl-markup", "model": "v0001", "choices": [{"index": 0, "delta": {"content": piece}}]}
        for piece in ("Look: ", INJECTION, " <script>window.__pwned=2</script>", " \x1b[2J\x07done")
    ]
    body = "".join(f"data: {json.dumps(c)}\n\n" for c in chunks) + "data: [DONE]\n\n"
    with chromium_page(viewport=(390, 844)) as page:
        page.route(
            "**/v1/chat/completions",
            lambda route: route.fulfill(
                status=200, body=body, headers={"content-type": "text/event-stream", "x-forge-model-version": "v0001"}
            ),
        )
        _open(page, playground["url"])
        _send(page, "Show me markup")
        reply = _done_reply(page, 0)
        text = reply.locator(".text").first.text_content()
        assert text == f"Look: {INJECTION} <script>window.__pwned=2</script> \u241b[2J\u2407done"
        assert page.locator("#chat img, #chat script").count() == 0
        assert page.evaluate("window.__pwned") is None
        # Usable at phone width: nothing wider than the window, the controls reachable below the chat.
        assert page.evaluate("document.documentElement.scrollWidth") <= 390
        page.get_by_role("button", name="Train now").scroll_into_view_if_needed()
        assert page.get_by_role("button", name="Train now").is_visible()
        page.evaluate("window.scrollTo(0, 0)")
        save_screenshot(page, tmp_path, "playground_phone", readme_name="playground-phone.png")


def test_train_now_asks_for_the_token_starts_a_job_and_shows_the_new_version_without_reload(playground, tmp_path):
    jobs_dir = playground["root"] / "serve" / "fine_tuning"
    with chromium_page(viewport=(1280, 800)) as page:
        from playwright.sync_api import expect

        _open(page, playground["url"])
        expect(page.locator("#current-version")).to_have_text("v0001")
        page.evaluate("window.__sameDocument = true")  # gone if the page reloads

        page.get_by_role("button", name="Train now").click()
        page.get_by_label("Admin token").fill(TOKEN)
        page.get_by_label("Admin token").press("Enter")
        # Launching the Dagster run takes seconds (the run's process starts before the answer).
        expect(page.locator("#train-message")).to_have_text(re.compile(r"^Started ftjob-"), timeout=90_000)
        (job_file,) = list(jobs_dir.glob("ftjob-*.json"))
        job = json.loads(job_file.read_text())
        assert job["training_file"] is None and job["user_provided_suffix"] == "playground"
        # "Train now" teaches the serving version (train.continue_from: current), not a retrain from the base.
        assert job["model"] == "current"

        # What the retrain chain's last asset does: publish and promote a version (here v0002's files as v0003).
        manifest = read_manifest(playground["manifest"])
        manifest["versions"]["v0003"] = {
            **manifest["versions"]["v0002"],
            "version": "v0003",
            "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "promoted": True,
            "evaluation": {"base_perplexity": 41.5, "tuned_perplexity": 20.75},
        }
        manifest["current"] = "v0003"
        manifest["history"].append("v0003")
        manifest["candidate"] = None
        write_json_atomic(playground["manifest"], manifest)

        # The page follows the job (GET /v1/fine_tuning/jobs/{id}) to its published version, then /v1/models to
        # the swap; its periodic status refresh may show the new label first, so the follower's line is awaited.
        expect(page.locator("#train-message")).to_have_text("v0003 is now serving.", timeout=120_000)
        expect(page.locator("#current-version")).to_have_text("v0003")
        assert page.evaluate("window.__sameDocument") is True
        wait_until(
            lambda: "succeeded" in (page.locator("#status-job").text_content() or ""),
            timeout_s=30,
            interval_s=0.5,
            what="the job line to show the finished job",
        )
        assert page.locator("#status-job").text_content().startswith(f"{job['id']} · succeeded · published v0003")
        assert page.locator("#status-current-eval").text_content() == (
            "held-out perplexity 20.75 vs base 41.50 (-50.0%)"
        )
        assert playground["client"].get("/health").json()["model_version"] == "v0003"
        # The run (finished: the page saw it succeed) was launched with the config of a taught run.
        events = (
            playground["client"]
            .get(f"/v1/fine_tuning/jobs/{job['id']}/events", params={"limit": 100}, headers=ADMIN)
            .json()["data"]
        )
        (logged,) = [e["message"] for e in events if e["message"].startswith(CONFIG_LOG_PREFIX)]
        assert json.loads(logged.removeprefix(CONFIG_LOG_PREFIX))["continue_from"] == "current"


DATA_ASSETS = (
    "vault_notes",
    "conversations",
    "training_examples",
    "scrubbed_examples",
    "filtered_examples",
    "deduplicated_examples",
    "curated_examples",
    "dataset_version",
)


def _examples_in_next_dataset_version(root: Path, tmp_path: Path, monkeypatch) -> dict[str, dict]:
    """The next dataset version's examples (real Dagster materialization of ingest -> scrub -> filter -> dedup ->
    curate -> dataset_version over the interactions folder the server wrote), by interaction id, with the split
    each landed in."""
    import dagster as dg

    from forge_pipeline.definitions import build_definitions

    (tmp_path / "empty_vault").mkdir()
    monkeypatch.setenv("FORGE_VAULT_DIR", str(tmp_path / "empty_vault"))
    monkeypatch.setenv("FORGE_CONVERSATIONS_DIR", str(tmp_path / "no_conversations"))
    monkeypatch.setenv("FORGE_INTERACTIONS_DIR", str(root / "interactions"))
    data_root = tmp_path / "data_root"
    result = (
        build_definitions(str(data_root))
        .resolve_implicit_global_asset_job_def()
        .execute_in_process(
            instance=dg.DagsterInstance.ephemeral(),
            asset_selection=[dg.AssetKey(k) for k in DATA_ASSETS],
        )
    )
    assert result.success
    version = result.output_for_node("dataset_version")
    return {
        row["conversation_id"]: {**row, "split": split}
        for split in ("train", "validation")
        for line in (version.path / f"{split}.jsonl").read_text(encoding="utf-8").splitlines()
        if (row := json.loads(line))
    }


def test_a_multi_turn_correction_and_choice_train_on_exactly_the_conversation_the_person_saw(
    playground, tmp_path, monkeypatch
):
    """Turn 1 corrected, turn 2 side by side with A chosen, turn 3 corrected: each later turn sends the
    corrected / chosen reply as history, and each judgement is, in the next dataset version's train split, the
    conversation as the page showed it up to the judged turn with the person's reply as the answer."""
    from forge_pipeline.records import strip_control

    before = len(_interactions(playground["root"]))
    sent: list[list[dict]] = []
    with chromium_page(viewport=(1280, 800)) as page:
        from playwright.sync_api import expect

        page.on(
            "request",
            lambda r: sent.append(r.post_data_json["messages"]) if r.url.endswith("/v1/chat/completions") else None,
        )
        _open(page, playground["url"])
        page.get_by_label("Max tokens").fill("12")
        page.get_by_label("Version", exact=True).select_option("v0001")

        def correct(reply, text: str) -> None:
            reply.get_by_role("button", name="Correct this reply").click()
            reply.get_by_label("Corrected reply").fill(text)
            reply.get_by_role("button", name="Save correction").click()
            expect(reply.locator(".confirm")).to_have_text(re.compile(r"^Saved: correction of v0001's reply"))

        _send(page, "How often do I feed the starter?")
        correct(_done_reply(page, 0), "Twice a day, equal flour and water.")

        page.get_by_label("Side by side").check()
        page.get_by_label("Second version").select_option("v0002")
        _send(page, "And when I travel?")
        a = _done_reply(page, 1)
        _done_reply(page, 2)  # both replies are in before the choice
        page.get_by_role("button", name="Choose reply A").click()
        expect(page.locator(".choose .confirm")).to_have_text(re.compile(r"^Saved: you chose A \(v0001\)"))
        chosen_shown = a.locator(".text").first.text_content()

        page.get_by_role("checkbox", name=re.compile(r"^Side by side")).uncheck()
        _send(page, "Anything else?")
        correct(_done_reply(page, 3), "Feed it once more before you leave.")
        shown_users = page.locator(".turn.user .text").all_text_contents()

    records = _interactions(playground["root"])[before:]
    kinds = [(r.get("corrected_reply") is not None, r.get("choice") is not None) for r in records]
    assert kinds == [(True, False), (False, True), (True, False)]
    chosen = records[1]["choice"]["replies"][0]
    assert _as_shown(chosen) == chosen_shown  # the reply stored is the one the page showed as A
    u1, u2, u3 = ({"role": "user", "content": text} for text in shown_users)
    fix1 = {"role": "assistant", "content": "Twice a day, equal flour and water."}
    picked = {"role": "assistant", "content": chosen}
    # What the page sent: after "Correct" and after the choice, the person's reply is the history.
    assert sent[1] == sent[2] == [u1, fix1, u2]
    assert sent[3] == [u1, fix1, u2, picked, u3]

    examples = _examples_in_next_dataset_version(playground["root"], tmp_path, monkeypatch)
    system = examples[records[0]["interaction_id"]]["messages"][0]
    assert system["role"] == "system"  # the page sent none; ingest puts its system prompt first
    fix3 = {"role": "assistant", "content": "Feed it once more before you leave."}
    expected = {
        records[0]["interaction_id"]: ([system, u1, fix1], ["correction"]),
        records[1]["interaction_id"]: (
            [system, u1, fix1, u2, {**picked, "content": strip_control(chosen)}],
            ["choice"],
        ),
        records[2]["interaction_id"]: (
            [system, u1, fix1, u2, {**picked, "content": strip_control(chosen)}, u3, fix3],
            ["correction"],
        ),
    }
    for interaction_id, (messages, tags) in expected.items():
        assert examples[interaction_id]["messages"] == messages
        assert examples[interaction_id]["tags"] == tags
        assert examples[interaction_id]["split"] == "train"  # what a person taught is trained on, never held out
