"""OpenAI's chat completions and (legacy) completions resources: `POST /v1/chat/completions`, `POST /v1/completions`.

Request shapes follow OpenAI's API reference. What llama-cpp-python can do is passed to it (sampling,
`stop`, `seed`, `response_format` json_object / json_schema as a grammar, `stream`,
`stream_options.include_usage`); what it cannot do is a 400 naming the parameter (`tools`, `n` > 1,
`logprobs`, image parts, ...), never a silent drop. `model` picks the version (see ModelHost.resolve).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any, Literal

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from jinja2 import TemplateError
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from forge_pipeline.records import ChatMessage
from forge_pipeline.serve.errors import APIError, invalid, model_not_found, no_model, unsupported
from forge_pipeline.serve.interactions import InteractionIn
from forge_pipeline.serve.models import NoModelError, UnknownVersionError
from forge_pipeline.serve.streaming import EventStream, sse

VERSION_HEADER = "x-forge-model-version"
MAX_STOP = 4  # OpenAI's limit on stop sequences


class StreamOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    include_usage: bool = False


class JsonSchema(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    name: str = Field(min_length=1, max_length=64)
    description: str | None = None
    schema_: dict[str, Any] | None = Field(default=None, alias="schema")
    strict: bool | None = None


class ResponseFormat(BaseModel):
    model_config = ConfigDict(extra="forbid")

    type: Literal["text", "json_object", "json_schema"]
    json_schema: JsonSchema | None = None

    @model_validator(mode="after")
    def _schema_with_json_schema(self) -> ResponseFormat:
        if (self.type == "json_schema") != (self.json_schema is not None):
            raise ValueError("json_schema is required with type 'json_schema' and only allowed with it")
        return self

    def for_llama(self) -> dict | None:
        """llama-cpp-python's form: json_object with an optional schema, turned into a grammar."""
        if self.type == "text":
            return None
        if self.type == "json_object":
            return {"type": "json_object"}
        schema = self.json_schema.schema_ or {"type": "object"}
        return {"type": "json_object", "schema": schema}


class TextPart(BaseModel):
    model_config = ConfigDict(extra="forbid")

    type: Literal["text"]
    text: str


class RequestMessage(BaseModel):
    """One message as OpenAI accepts it (roles developer/system/user/assistant/tool, `name`, content parts,
    assistant `content: null` with `tool_calls`); `for_llama` turns it into what the chat template renders."""

    model_config = ConfigDict(extra="forbid")

    role: Literal["developer", "system", "user", "assistant", "tool"]
    content: str | list[TextPart | dict[str, Any]] | None = None
    name: str | None = None
    tool_calls: list[dict[str, Any]] | None = None
    tool_call_id: str | None = None
    refusal: str | None = None

    @model_validator(mode="after")
    def _content_rules(self) -> RequestMessage:
        if self.content is None and not (self.role == "assistant" and (self.tool_calls or self.refusal)):
            raise ValueError("content is required (null only for an assistant turn with tool_calls)")
        if self.tool_calls is not None and self.role != "assistant":
            raise ValueError("tool_calls is only allowed on an assistant message")
        if self.role == "tool" and not self.tool_call_id:
            raise ValueError("a tool message needs tool_call_id")
        return self

    def text(self) -> str:
        if self.content is None:
            return ""
        if isinstance(self.content, str):
            return self.content
        texts = []
        for part in self.content:
            if isinstance(part, dict) and part.get("type") == "text" and isinstance(part.get("text"), str):
                part = TextPart(type="text", text=part["text"])
            if not isinstance(part, TextPart):
                raise unsupported(
                    "messages.content", f"only text parts can be read by this model, not {part.get('type')!r}"
                )
            texts.append(part.text)
        return "\n".join(texts)

    def for_llama(self) -> dict:
        # `developer` is OpenAI's newer name for the system role; chat templates know `system`.
        message: dict[str, Any] = {"role": "system" if self.role == "developer" else self.role, "content": self.text()}
        for extra in ("name", "tool_calls", "tool_call_id"):
            if getattr(self, extra) is not None:
                message[extra] = getattr(self, extra)
        return message


class SamplingFields(BaseModel):
    """Fields both resources share, with OpenAI's ranges."""

    model_config = ConfigDict(extra="forbid")

    model: str | None = None
    temperature: float = Field(default=0.7, ge=0.0, le=2.0)
    top_p: float = Field(default=0.95, gt=0.0, le=1.0)
    presence_penalty: float = Field(default=0.0, ge=-2.0, le=2.0)
    frequency_penalty: float = Field(default=0.0, ge=-2.0, le=2.0)
    stop: str | list[str] | None = None
    seed: int | None = None
    n: int = Field(default=1, ge=1, le=128)
    stream: bool = False
    stream_options: StreamOptions | None = None
    logit_bias: dict[str, float] | None = None
    user: str | None = None  # an end-user id for the caller's own records; changes nothing here

    @field_validator("stop")
    @classmethod
    def _at_most_four(cls, value):
        if isinstance(value, list) and len(value) > MAX_STOP:
            raise ValueError(f"at most {MAX_STOP} stop sequences")
        return value

    def check_supported(self) -> None:
        if self.n != 1:
            raise unsupported("n", "one choice per request (send the request again for another sample)")
        if self.logit_bias:
            raise unsupported("logit_bias")
        if self.stream_options is not None and not self.stream:
            raise invalid("stream_options is only allowed when stream is true", param="stream_options")

    def sampling(self) -> dict:
        return {
            "temperature": self.temperature,
            "top_p": self.top_p,
            "stop": self.stop,
            "seed": self.seed,
            "presence_penalty": self.presence_penalty,
            "frequency_penalty": self.frequency_penalty,
        }


class ChatRequest(SamplingFields):
    messages: list[RequestMessage] = Field(min_length=1)
    max_tokens: int | None = Field(default=None, gt=0)
    max_completion_tokens: int | None = Field(default=None, gt=0)
    response_format: ResponseFormat | None = None
    tools: list[dict[str, Any]] | None = None
    tool_choice: str | dict[str, Any] | None = None
    parallel_tool_calls: bool | None = None
    functions: list[dict[str, Any]] | None = None
    function_call: str | dict[str, Any] | None = None
    logprobs: bool | None = None
    top_logprobs: int | None = Field(default=None, ge=0, le=20)

    def check_supported(self) -> None:
        super().check_supported()
        for name in ("tools", "functions"):
            if getattr(self, name):
                raise unsupported(name, "the served models are not trained for tool calls")
        for name in ("tool_choice", "function_call"):
            if getattr(self, name) not in (None, "none"):
                raise unsupported(name, "the served models are not trained for tool calls")
        if self.logprobs or self.top_logprobs:
            raise unsupported("logprobs" if self.logprobs else "top_logprobs")

    def token_limit(self) -> int:
        # max_completion_tokens is OpenAI's current name (LangChain sends it); max_tokens the older one.
        return self.max_completion_tokens or self.max_tokens or 128


class CompletionRequest(SamplingFields):
    prompt: str | list[str] | list[int] | list[list[int]]
    max_tokens: int | None = Field(default=16, gt=0)
    echo: bool = False
    suffix: str | None = None
    best_of: int | None = None
    logprobs: int | None = Field(default=None, ge=0, le=5)

    def check_supported(self) -> None:
        super().check_supported()
        if self.best_of not in (None, 1):
            raise unsupported("best_of")
        if self.logprobs is not None:  # llama.cpp would need every token's logits kept (logits_all) for it
            raise unsupported("logprobs", "the served models keep only the last token's logits")

    def prompts(self) -> list[str | list[int]]:
        prompt = self.prompt
        if isinstance(prompt, str) or (prompt and isinstance(prompt[0], int)):
            prompts = [prompt]
        else:
            prompts = list(prompt)
        if not prompts or any(len(p) == 0 for p in prompts):
            raise invalid("prompt must not be empty", param="prompt")
        return prompts


def usage_chunk(
    response_id: str, obj: str, created: int, version: str, prompt_tokens: int, completion_tokens: int
) -> bytes:
    """The last SSE frame of a stream asked for `stream_options.include_usage`: no choices, only the usage."""
    usage = {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
    }
    return sse({"id": response_id, "object": obj, "created": created, "model": version, "choices": [], "usage": usage})


def check_token_ids(llm, prompt, param: str) -> None:
    """Token-id prompts must be ids of the served model's vocabulary (llama.cpp fails on others)."""
    if isinstance(prompt, list) and prompt and isinstance(prompt[0], int):
        vocabulary = llm.n_vocab()
        if any(not 0 <= token < vocabulary for token in prompt):
            raise invalid(f"token ids must be in 0..{vocabulary - 1}, the served model's vocabulary", param=param)


def _llama_error(err: Exception, param: str) -> APIError:
    """llama-cpp-python raises ValueError for a prompt over the context (OpenAI's 400 context_length_exceeded)
    and the chat template's own errors (jinja2) for conversations it cannot render: both are the request's fault."""
    text = str(err)
    if "exceed context window" in text:
        return APIError(
            400,
            f"This model's context is too small for the request: {text}. Shorten the {param} or lower max_tokens.",
            param=param,
            code="context_length_exceeded",
        )
    if isinstance(err, TemplateError):
        return APIError(400, f"the model's chat template cannot render these messages: {text}", param=param)
    return APIError(400, text, param=param)


class _Meter:
    """A llama-cpp-python logits processor (public hook, called once per sampled token with the whole
    context so far): notes the prompt's token count and the time of the first token, and ends the
    generation (only EOS allowed) once the server is shutting down."""

    def __init__(self, llm, stopping: threading.Event):
        self.llm, self.stopping = llm, stopping
        self.prompt_tokens: int | None = None
        self.first_token_at: float | None = None

    def __call__(self, input_ids, scores):
        if self.prompt_tokens is None:
            self.prompt_tokens = len(input_ids)
            self.first_token_at = time.perf_counter()
        if self.stopping.is_set():
            eos = self.llm.token_eos()
            value = scores[eos]
            scores[:] = -float("inf")
            scores[eos] = value if value > -float("inf") else 0.0
        return scores

    def processors(self):
        from llama_cpp import LogitsProcessorList

        return LogitsProcessorList([self])

    def completion_tokens(self, text: str) -> int:
        return len(self.llm.tokenize(text.encode("utf-8"), add_bos=False, special=False)) if text else 0


def chat_router(model_host, served, store, log_served_chats: bool, metrics=None) -> APIRouter:
    router = APIRouter()

    def pick_version(model: str | None) -> str | None:
        try:
            return model_host.resolve(model)
        except UnknownVersionError as err:
            raise model_not_found(model, str(err)) from None
        except NoModelError as err:
            raise no_model(err) from None

    def log_chat(request_messages: list[RequestMessage], reply: str, version: str) -> None:
        if not (log_served_chats and reply.strip()):
            return
        # Only plain system/user/assistant text turns are kept as training material.
        turns = [m for m in request_messages if m.role in ("system", "user", "assistant", "developer")]
        try:
            messages = [
                ChatMessage(role="system" if m.role == "developer" else m.role, content=m.text()) for m in turns
            ] + [ChatMessage(role="assistant", content=reply)]
            store.append(InteractionIn(messages=messages, model_version=version))
        except ValueError:
            pass  # a conversation the record format cannot hold (empty turns, tool calls) is served, not logged

    def observe(route: str, version: str, started: float, meter: _Meter, completion_tokens: int) -> None:
        if metrics is not None:
            metrics.generation(
                route,
                version,
                meter.prompt_tokens,
                completion_tokens,
                None if meter.first_token_at is None else meter.first_token_at - started,
            )

    @router.post("/v1/chat/completions")
    def chat_completions(body: ChatRequest):
        body.check_supported()
        messages = [m.for_llama() for m in body.messages]
        options = {
            **body.sampling(),
            "max_tokens": body.token_limit(),
            "response_format": body.response_format.for_llama() if body.response_format else None,
        }
        version = pick_version(body.model)
        if body.stream:
            include_usage = bool(body.stream_options and body.stream_options.include_usage)
            headers: dict[str, str] = {}  # filled by the generator's first step, sent after it
            return EventStream(_chat_events(body, messages, options, version, include_usage, headers), headers)
        try:
            with model_host.session(ab=True, version=version) as session:  # A/B: the router may pick the candidate
                meter = _Meter(session.llm, model_host.stopping_event)
                started = time.perf_counter()
                try:
                    result = session.llm.create_chat_completion(
                        messages=messages, logits_processor=meter.processors(), **options
                    )
                except (ValueError, TemplateError) as err:
                    raise _llama_error(err, "messages") from None
                latency_ms = (time.perf_counter() - started) * 1000
                served_version, route = session.version, session.route
        except NoModelError as err:
            raise no_model(err) from None
        except UnknownVersionError as err:
            raise model_not_found(body.model, str(err)) from None
        usage = result.get("usage") or {}
        served.append(
            result["id"], served_version, route, latency_ms, usage.get("prompt_tokens"), usage.get("completion_tokens")
        )
        observe("chat", served_version, started, meter, usage.get("completion_tokens") or 0)
        log_chat(body.messages, result["choices"][0]["message"]["content"] or "", served_version)
        result["model"] = served_version
        return JSONResponse(result, headers={VERSION_HEADER: served_version})

    def _chat_events(
        body: ChatRequest,
        messages: list[dict],
        options: dict,
        version: str | None,
        include_usage: bool,
        headers: dict[str, str],
    ) -> Iterator[bytes]:
        # The model lock is taken here, on the generator's first step, never in the request handler: see
        # serve/streaming.py for why. The `with` releases it whenever the generator is closed.
        try:
            with model_host.session(ab=True, version=version) as session:
                headers[VERSION_HEADER] = session.version
                meter = _Meter(session.llm, model_host.stopping_event)
                started = time.perf_counter()
                response_id, pieces, last = None, [], None
                try:
                    chunks = session.llm.create_chat_completion(
                        messages=messages, stream=True, logits_processor=meter.processors(), **options
                    )
                    for chunk in chunks:
                        chunk["model"] = session.version
                        response_id = response_id or chunk.get("id")
                        if chunk["choices"]:
                            pieces.append(chunk["choices"][0].get("delta", {}).get("content") or "")
                        last = chunk
                        yield sse(chunk)
                except (ValueError, TemplateError) as err:
                    raise _llama_error(err, "messages") from None
                reply = "".join(pieces)
                completion_tokens = meter.completion_tokens(reply)
                # Recorded before [DONE]: a client that rates the response right after the stream ends finds it.
                if response_id:
                    served.append(
                        response_id,
                        session.version,
                        session.route,
                        (time.perf_counter() - started) * 1000,
                        meter.prompt_tokens,
                        completion_tokens,
                    )
                observe("chat", session.version, started, meter, completion_tokens)
                log_chat(body.messages, reply, session.version)
                if include_usage and last is not None:
                    prompt_tokens = meter.prompt_tokens or 0
                    yield usage_chunk(
                        response_id,
                        "chat.completion.chunk",
                        last["created"],
                        session.version,
                        prompt_tokens,
                        completion_tokens,
                    )
                yield sse("[DONE]")
        except NoModelError as err:
            raise no_model(err) from None
        except UnknownVersionError as err:
            raise model_not_found(body.model, str(err)) from None

    @router.post("/v1/completions")
    def completions(body: CompletionRequest):
        body.check_supported()
        prompts = body.prompts()
        version = pick_version(body.model)
        options = {**body.sampling(), "max_tokens": body.max_tokens, "echo": body.echo, "suffix": body.suffix}
        if body.stream:
            if len(prompts) != 1:
                raise unsupported("prompt", "streaming takes one prompt per request")
            include_usage = bool(body.stream_options and body.stream_options.include_usage)
            headers = {}
            return EventStream(_completion_events(body, prompts[0], options, version, include_usage, headers), headers)
        try:
            with model_host.session(version=version) as session:
                results = []
                for prompt in prompts:
                    check_token_ids(session.llm, prompt, "prompt")
                    meter = _Meter(session.llm, model_host.stopping_event)
                    started = time.perf_counter()
                    try:
                        results.append(
                            session.llm.create_completion(prompt, logits_processor=meter.processors(), **options)
                        )
                    except ValueError as err:
                        raise _llama_error(err, "prompt") from None
                    observe(
                        "completion",
                        session.version,
                        started,
                        meter,
                        (results[-1].get("usage") or {}).get("completion_tokens") or 0,
                    )
                served_version = session.version
        except NoModelError as err:
            raise no_model(err) from None
        except UnknownVersionError as err:
            raise model_not_found(body.model, str(err)) from None
        result = results[0]
        if len(results) > 1:  # one choice per prompt, indexed as OpenAI does; usage summed
            result["choices"] = [{**r["choices"][0], "index": i} for i, r in enumerate(results)]
            result["usage"] = {
                key: sum((r.get("usage") or {}).get(key) or 0 for r in results)
                for key in ("prompt_tokens", "completion_tokens", "total_tokens")
            }
        result["model"] = served_version
        return JSONResponse(result, headers={VERSION_HEADER: served_version})

    def _completion_events(
        body: CompletionRequest,
        prompt,
        options: dict,
        version: str | None,
        include_usage: bool,
        headers: dict[str, str],
    ) -> Iterator[bytes]:
        try:
            with model_host.session(version=version) as session:
                headers[VERSION_HEADER] = session.version
                check_token_ids(session.llm, prompt, "prompt")
                meter = _Meter(session.llm, model_host.stopping_event)
                started = time.perf_counter()
                pieces, last = [], None
                try:
                    for chunk in session.llm.create_completion(
                        prompt, stream=True, logits_processor=meter.processors(), **options
                    ):
                        chunk["model"] = session.version
                        pieces.append((chunk["choices"][0].get("text") or "") if chunk["choices"] else "")
                        last = chunk
                        yield sse(chunk)
                except ValueError as err:
                    raise _llama_error(err, "prompt") from None
                completion_tokens = meter.completion_tokens("".join(pieces))
                observe("completion", session.version, started, meter, completion_tokens)
                if include_usage and last is not None:
                    prompt_tokens = meter.prompt_tokens or 0
                    yield usage_chunk(
                        last["id"],
                        "text_completion",
                        last["created"],
                        session.version,
                        prompt_tokens,
                        completion_tokens,
                    )
                yield sse("[DONE]")
        except NoModelError as err:
            raise no_model(err) from None
        except UnknownVersionError as err:
            raise model_not_found(body.model, str(err)) from None

    return router
