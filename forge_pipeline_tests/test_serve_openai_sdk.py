"""The real server driven by the official `openai` SDK and by `langchain-openai`, unmodified: every OpenAI
route, streaming, model selection, and errors by the SDK's exception class (status, `param`, `code`).

Shares the session's server (conftest.serve_server: tiny GGUF base, v0001/v0002 adapters, n_ctx 512)."""

from __future__ import annotations

import json
import time

import openai
import pytest

pytestmark = pytest.mark.slow
ASK = [{"role": "user", "content": "How should I plan a migration?"}]


@pytest.fixture
def sdk(serve_server):
    # max_retries=0: a wrongly retryable status (5xx, 409) must show up as a failure, not as a slow pass.
    with openai.OpenAI(
        base_url=f"http://127.0.0.1:{serve_server['port']}/v1", api_key="unused", max_retries=0, timeout=60
    ) as client:
        yield client


def _reply(sdk, model: str, **extra) -> str:
    result = sdk.chat.completions.create(model=model, messages=ASK, max_tokens=8, temperature=0, **extra)
    return result.choices[0].message.content


# -- chat -------------------------------------------------------------------------------------------------
def test_chat_completion_has_openai_shape_and_honours_max_completion_tokens(sdk):
    result = sdk.chat.completions.create(model="forge", messages=ASK, max_completion_tokens=3, temperature=0)
    assert result.object == "chat.completion" and result.model == "v0001"
    assert result.choices[0].message.role == "assistant" and result.choices[0].finish_reason == "length"
    assert result.usage.completion_tokens == 3 and result.usage.prompt_tokens > 0


def test_model_selects_the_version_and_unknown_models_are_404(sdk):
    first, second = _reply(sdk, "v0001"), _reply(sdk, "v0002")
    assert first != second  # different adapters, greedy decoding
    assert _reply(sdk, "v0001") == first and _reply(sdk, "forge") == first
    named = sdk.chat.completions.create(model="v0002", messages=ASK, max_tokens=2)
    assert named.model == "v0002"
    with pytest.raises(openai.NotFoundError) as caught:
        sdk.chat.completions.create(model="gpt-4o", messages=ASK, max_tokens=2)
    assert caught.value.code == "model_not_found" and caught.value.param == "model"


def test_streaming_chat_yields_chunks_and_usage_and_is_recorded_before_done(sdk, serve_server):
    for _ in range(5):  # the rating right after [DONE] used to be refused now and then
        stream = sdk.chat.completions.create(
            model="v0001",
            messages=ASK,
            max_tokens=6,
            temperature=0,
            stream=True,
            stream_options={"include_usage": True},
        )
        chunks = list(stream)
        assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens > 0
        assert all(c.model == "v0001" and c.object == "chat.completion.chunk" for c in chunks)
        text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        assert text == _reply(sdk, "v0001")[: len(text)]
        rating = serve_server["client"].post(
            "/v1/interactions",
            json={
                "messages": [*ASK, {"role": "assistant", "content": text or "(empty)"}],
                "rating": "up",
                "response_id": chunks[0].id,
            },
        )
        assert rating.status_code == 201, rating.text


def test_openai_message_forms_are_accepted(sdk):
    messages = [
        {"role": "developer", "content": "Answer briefly."},
        {"role": "user", "name": "sam", "content": [{"type": "text", "text": "Plan"}, {"type": "text", "text": "it"}]},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [{"id": "call_1", "type": "function", "function": {"name": "lookup", "arguments": "{}"}}],
        },
        {"role": "tool", "tool_call_id": "call_1", "content": "nothing found"},
        {"role": "user", "content": "Then what?"},
    ]
    result = sdk.chat.completions.create(model="forge", messages=messages, max_tokens=4)
    assert result.choices[0].message.role == "assistant"


def test_response_format_json_schema_constrains_the_reply(sdk):
    schema = {
        "type": "object",
        "properties": {"ok": {"type": "boolean"}},
        "required": ["ok"],
        "additionalProperties": False,
    }
    result = sdk.chat.completions.create(
        model="forge",
        messages=ASK,
        max_tokens=40,
        temperature=0,
        response_format={"type": "json_schema", "json_schema": {"name": "answer", "schema": schema}},
    )
    assert isinstance(json.loads(result.choices[0].message.content)["ok"], bool)
    loose = sdk.chat.completions.create(
        model="forge", messages=ASK, max_tokens=40, temperature=0, response_format={"type": "json_object"}
    )
    assert loose.choices[0].message.content.lstrip().startswith(("{", "["))


@pytest.mark.parametrize(
    ("extra", "param"),
    [
        ({"temperature": 5}, "temperature"),
        ({"stop": ["a", "b", "c", "d", "e"]}, "stop"),
        ({"n": 2}, "n"),
        ({"logprobs": True}, "logprobs"),
        ({"tools": [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}]}, "tools"),
        ({"extra_body": {"not_an_openai_field": 1}}, "not_an_openai_field"),
        ({"reasoning_effort": "low"}, "reasoning_effort"),
        ({"modalities": ["text", "audio"]}, "modalities"),
    ],
)
def test_bad_or_unsupported_parameters_are_400_naming_the_parameter(sdk, extra, param):
    with pytest.raises(openai.BadRequestError) as caught:
        sdk.chat.completions.create(model="forge", messages=ASK, max_tokens=2, **extra)
    assert caught.value.param == param and caught.value.type == "invalid_request_error", caught.value.body
    if param == "not_an_openai_field":
        assert "Unrecognized request argument supplied" in caught.value.message


def test_parameters_that_change_no_answer_here_are_accepted_and_ignored(sdk):
    """SDK-based agents send `store`, `metadata`, `service_tier`, ... on every call. Bug: 400 Unrecognized."""
    ignored = {
        "store": True,
        "metadata": {"agent": "planner", "run": "42"},
        "service_tier": "auto",
        "prompt_cache_key": "session-7",
        "safety_identifier": "hashed-user-1",
        "user": "user-1",
    }
    plain = sdk.chat.completions.create(model="forge", messages=ASK, max_tokens=4, temperature=0)
    labelled = sdk.chat.completions.create(model="forge", messages=ASK, max_tokens=4, temperature=0, **ignored)
    assert labelled.choices[0].message.content == plain.choices[0].message.content
    completion = sdk.completions.create(
        model="forge", prompt="The migration plan", max_tokens=2, **{k: ignored[k] for k in ("user",)}
    )
    assert completion.choices[0].text is not None
    streamed = list(
        sdk.chat.completions.create(model="forge", messages=ASK, max_tokens=2, stream=True, store=False, metadata={})
    )
    assert streamed and streamed[-1].choices[0].finish_reason in ("stop", "length")


def test_image_parts_are_400_naming_the_content(sdk):
    with pytest.raises(openai.BadRequestError) as caught:
        sdk.chat.completions.create(
            model="forge",
            max_tokens=2,
            messages=[
                {"role": "user", "content": [{"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}]}
            ],
        )
    assert caught.value.param == "messages.content"


def test_prompt_over_the_context_is_400_context_length_exceeded_streamed_or_not(sdk):
    long = [{"role": "user", "content": "word " * 2000}]
    for stream in (False, True):
        with pytest.raises(openai.BadRequestError) as caught:
            sdk.chat.completions.create(model="forge", messages=long, max_tokens=2, stream=stream)
        assert caught.value.code == "context_length_exceeded", stream
    with pytest.raises(openai.BadRequestError) as caught:
        sdk.completions.create(model="forge", prompt="word " * 2000, max_tokens=2)
    assert caught.value.code == "context_length_exceeded" and caught.value.param == "prompt"


# -- completions ------------------------------------------------------------------------------------------
def test_completions_stream_and_take_prompt_lists_and_token_arrays(sdk):
    whole = sdk.completions.create(model="forge", prompt="The migration plan", max_tokens=6, temperature=0)
    streamed = list(
        sdk.completions.create(model="forge", prompt="The migration plan", max_tokens=6, temperature=0, stream=True)
    )
    assert "".join(c.choices[0].text for c in streamed if c.choices) == whole.choices[0].text
    several = sdk.completions.create(
        model="forge", prompt=["The migration plan", "Team lead"], max_tokens=3, temperature=0
    )
    assert [c.index for c in several.choices] == [0, 1] and several.choices[0].text == whole.choices[0].text[
        : len(several.choices[0].text)
    ]
    tokens = sdk.completions.create(model="forge", prompt=[312, 406, 426], max_tokens=3)  # ids of the tiny vocabulary
    assert tokens.choices[0].text is not None and tokens.usage.prompt_tokens == 3
    with pytest.raises(openai.BadRequestError) as caught:
        sdk.completions.create(model="forge", prompt=[1, 99999], max_tokens=3)
    assert caught.value.param == "prompt"
    with pytest.raises(openai.BadRequestError) as caught:
        sdk.completions.create(model="forge", prompt="x", max_tokens=3, logprobs=2)
    assert caught.value.param == "logprobs"


# -- embeddings and models --------------------------------------------------------------------------------
def test_embeddings_with_the_sdks_base64_default_and_token_arrays(sdk):
    result = sdk.embeddings.create(model="forge", input=["read replicas", "team lead"])  # SDK sends base64
    assert [len(d.embedding) for d in result.data] == [256, 256] and result.data[0].embedding != result.data[
        1
    ].embedding
    as_float = sdk.embeddings.create(model="forge", input="read replicas", encoding_format="float")
    assert as_float.data[0].embedding == pytest.approx(result.data[0].embedding, abs=1e-6)
    assert len(sdk.embeddings.create(model="forge", input=[[312, 406, 426]]).data[0].embedding) == 256
    with pytest.raises(openai.BadRequestError) as caught:
        sdk.embeddings.create(model="forge", input="x", dimensions=8)
    assert caught.value.param == "dimensions"


def test_models_list_and_retrieve(sdk, serve_server):
    listed = {m.id: m for m in sdk.models.list()}
    assert set(listed) == {"v0001", "v0002"} and all(
        isinstance(m.created, int) and m.created > 0 for m in listed.values()
    )
    assert sdk.models.retrieve("v0002").id == "v0002"
    with pytest.raises(openai.NotFoundError):
        sdk.models.retrieve("v9999")
    # `model="forge"` answers chat, so it can be retrieved too: it describes the serving version.
    forge = sdk.models.retrieve("forge")
    assert forge.id == "forge" and forge.version == "v0001" and forge.serving is True


@pytest.mark.parametrize(
    "broken",
    [
        "v0002 without files",
        "versions as a list",
        "a JSON list",
    ],
)
def test_models_list_never_fails_on_a_structurally_broken_manifest(sdk, serve_server, broken):
    """Bug: a version entry without `files` made GET /v1/models a 500 (KeyError: 'files'). Whatever the shape,
    the list answers with what can be served, and naming a loaded version still works."""
    client, manifest_path = serve_server["client"], serve_server["manifest"]
    original = manifest_path.read_text()
    assert _reply(sdk, "v0002")  # v0002 is loaded (verified) before the manifest breaks
    manifest = json.loads(original)
    if broken == "v0002 without files":
        del manifest["versions"]["v0002"]["files"]
    elif broken == "versions as a list":
        manifest["versions"] = list(manifest["versions"].values())
    else:
        manifest = [manifest]
    manifest_path.write_text(json.dumps(manifest))
    try:
        deadline = time.time() + 1.5  # the server polls every 0.2 s; a broken `versions` shows in /health
        while not client.get("/health").json()["error"] and time.time() < deadline:
            time.sleep(0.1)
        listing = client.get("/v1/models")
        assert listing.status_code == 200, listing.text
        assert "v0001" in [m["id"] for m in listing.json()["data"]]
        assert sdk.chat.completions.create(model="v0002", messages=ASK, max_tokens=2).model == "v0002"
        assert sdk.models.retrieve("forge").version == "v0001"
    finally:
        manifest_path.write_text(original)
    deadline = time.time() + 10
    while client.get("/health").json()["status"] != "ok" and time.time() < deadline:
        time.sleep(0.1)


def test_every_listed_model_answers_chat(sdk):
    for model in sdk.models.list():
        assert sdk.chat.completions.create(model=model.id, messages=ASK, max_tokens=2).model == model.id


def test_a_deleted_manifest_is_reported_while_the_model_keeps_serving(sdk, serve_server):
    client, manifest = serve_server["client"], serve_server["manifest"]
    saved = manifest.read_bytes()
    manifest.unlink()
    try:
        deadline = time.time() + 10
        while client.get("/health").json()["status"] == "ok" and time.time() < deadline:
            time.sleep(0.1)
        health = client.get("/health").json()
        assert health["status"] == "degraded" and "missing" in health["error"] and health["model_version"] == "v0001"
        assert [m.id for m in sdk.models.list()] == ["v0001"]
    finally:
        manifest.write_bytes(saved)
    deadline = time.time() + 10
    while client.get("/health").json()["status"] != "ok" and time.time() < deadline:
        time.sleep(0.1)
    assert client.get("/health").json()["status"] == "ok"


# -- langchain ----------------------------------------------------------------------------------------------
def test_langchain_chat_stream_and_embeddings(serve_server):
    from langchain_openai import ChatOpenAI, OpenAIEmbeddings

    base_url = f"http://127.0.0.1:{serve_server['port']}/v1"
    chat = ChatOpenAI(
        model="v0001", base_url=base_url, api_key="unused", max_tokens=4, temperature=0, max_retries=0
    )  # LangChain sends max_tokens as max_completion_tokens
    message = chat.invoke("How should I plan a migration?")
    assert message.response_metadata["model_name"] == "v0001" and message.usage_metadata["output_tokens"] == 4
    streamed = "".join(chunk.content for chunk in chat.stream("How should I plan a migration?"))
    assert streamed == message.content
    # check_embedding_ctx_length=False: LangChain would otherwise fetch a tiktoken vocabulary from the network.
    embeddings = OpenAIEmbeddings(
        model="forge", base_url=base_url, api_key="unused", check_embedding_ctx_length=False, max_retries=0
    )
    vectors = embeddings.embed_documents(["read replicas", "team lead"])
    assert [len(v) for v in vectors] == [256, 256]


# -- metrics ------------------------------------------------------------------------------------------------
def _metrics(client) -> dict[tuple, float]:
    from prometheus_client.parser import text_string_to_metric_families

    response = client.get("/metrics")
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/plain")
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def test_metrics_count_requests_tokens_first_tokens_swaps_and_refusals(sdk, serve_server):
    client, manifest = serve_server["client"], serve_server["manifest"]
    before = _metrics(client)
    sdk.chat.completions.create(model="forge", messages=ASK, max_tokens=3, temperature=0)
    with pytest.raises(openai.NotFoundError):
        sdk.models.retrieve("v9999")
    original = manifest.read_text()
    manifest.write_text("{ truncated")
    try:
        deadline = time.time() + 10
        while not client.get("/health").json()["error"] and time.time() < deadline:
            time.sleep(0.1)
    finally:
        manifest.write_text(original)
    after = _metrics(client)

    def grew(name, **labels):
        key = (name, tuple(sorted(labels.items())))
        return after.get(key, 0) - before.get(key, 0)

    assert grew("forge_http_requests_total", method="POST", route="/v1/chat/completions", status="200") == 1
    assert grew("forge_http_requests_total", method="GET", route="/v1/models/{model}", status="404") == 1
    assert grew("forge_http_request_duration_seconds_count", method="POST", route="/v1/chat/completions") == 1
    assert grew("forge_tokens_total", kind="chat", direction="completion", version="v0001") == 3
    assert grew("forge_tokens_total", kind="chat", direction="prompt", version="v0001") > 0
    assert grew("forge_time_to_first_token_seconds_count", kind="chat") == 1
    assert grew("forge_manifest_refusals_total") >= 1
    assert after[("forge_served_version_info", (("version", "v0001"),))] == 1
    assert ("forge_model_swaps_total", (("kind", "adapter_swap"),)) in after


LONG_JSON_STREAM = {
    "messages": ASK,
    "max_tokens": 400,
    "stream": True,
    # The grammar allows no end before 400 characters: the generation is long whatever the random model samples.
    "response_format": {
        "type": "json_schema",
        "json_schema": {"name": "long", "schema": {"type": "string", "minLength": 400}},
    },
}


def test_metrics_count_client_hang_ups_as_499_not_500(serve_server):
    """Bug: three clients that hung up were counted as status="500" requests though nothing failed."""
    from forge_pipeline_tests.serve_fixtures import hang_up_before_first_byte

    client = serve_server["client"]
    before = _metrics(client)
    for _ in range(3):
        hang_up_before_first_byte(serve_server["port"], json.dumps(LONG_JSON_STREAM).encode())

    def grew(after, status):
        key = ("forge_http_requests_total", (("method", "POST"), ("route", "/v1/chat/completions"), ("status", status)))
        return after.get(key, 0) - before.get(key, 0)

    deadline = time.time() + 30
    while grew(after := _metrics(client), "499") < 3 and time.time() < deadline:
        time.sleep(0.2)
    assert grew(after, "499") == 3 and grew(after, "500") == 0 and grew(after, "200") == 0


# -- files ---------------------------------------------------------------------------------------------------
def _jsonl_of(path, megabytes: int, bad_line: int | None = None) -> int:
    """A fine-tuning JSONL of about `megabytes` MB (varied, valid examples); line `bad_line` is broken JSON.
    Returns the number of lines."""
    lines = 0
    target = megabytes * 1024 * 1024
    with open(path, "w", encoding="utf-8") as handle:
        while handle.tell() < target:
            lines += 1
            if lines == bad_line:
                handle.write('{"messages": [{"role": "user", "content": "cut off here"\n')
                continue
            record = {
                "messages": [
                    {"role": "user", "content": f"What did note {lines} say about the migration window?"},
                    {"role": "assistant", "content": f"Note {lines}: move the read replicas first. " * 8},
                ]
            }
            handle.write(json.dumps(record) + "\n")
    return lines


def test_a_50_mb_fine_tuning_file_uploads_and_a_bad_line_in_it_is_named(sdk, serve_server, tmp_path):
    """Bug: uploads were capped at serve.max_request_bytes (1 MB, the chat body limit). Files have their own
    limit (512 MB) and are validated line by line; the chat limit stays small (test_serve_server)."""
    good = tmp_path / "big.jsonl"
    lines = _jsonl_of(good, 50)
    with open(good, "rb") as handle:
        uploaded = sdk.files.create(file=handle, purpose="fine-tune")
    try:
        assert uploaded.bytes == good.stat().st_size and uploaded.status == "processed"
        assert sdk.files.retrieve(uploaded.id).bytes == good.stat().st_size
    finally:
        sdk.files.delete(uploaded.id)
    bad = tmp_path / "bad.jsonl"
    bad_line = lines - 100
    _jsonl_of(bad, 50, bad_line=bad_line)
    with open(bad, "rb") as handle, pytest.raises(openai.BadRequestError) as caught:
        sdk.files.create(file=handle, purpose="fine-tune")
    assert caught.value.param == "file" and f"line {bad_line}: not valid JSON" in caught.value.message
