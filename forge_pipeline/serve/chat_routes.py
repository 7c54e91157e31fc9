"""OpenAI's chat completions and (legacy) completions resources: `POST /v1/chat/completions`, `POST /v1/completions`.

Request schemas live in serve/protocol.py. What llama-cpp-python can do is passed to it (sampling, `stop`,
`seed`, `response_format` json_object / json_schema as a grammar, `stream`, `stream_options.include_usage`);
what it cannot do is a 400 naming the parameter (`tools`, `n` > 1, `logprobs`, image parts, ...), never a silent
drop. `model` picks the version (see ModelHost.resolve). Chat and completions, streamed or not, share one
generation path (`_generation`, `_events`): one stopping criterion that notes the prompt's token count and the
first token's time and stops at the next token on shutdown (the request then gets an OpenAI error, never a
truncated answer that looks complete).
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Generator
from typing import cast

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from jinja2 import TemplateError

from forge_pipeline.decoding import DecodingSettings
from forge_pipeline.records import ChatMessage, Role
from forge_pipeline.serve.engine import ShuttingDown
from forge_pipeline.serve.errors import APIError, invalid, model_not_found, unsupported
from forge_pipeline.serve.interactions import InteractionIn
from forge_pipeline.serve.models import UnknownVersionError
from forge_pipeline.serve.protocol import (  # noqa: F401  (re-exported: the schemas used to live here)
    MAX_STOP,
    ChatRequest,
    CompletionRequest,
    JsonSchema,
    RequestMessage,
    ResponseFormat,
    SamplingFields,
    StreamOptions,
    TextPart,
)
from forge_pipeline.serve.streaming import EventStream, sse

VERSION_HEADER = "x-forge-model-version"


def usage_chunk(
    response_id: str | None, obj: str, created: int, version: str, prompt_tokens: int, completion_tokens: int
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
    """The per-token hook of a generation (the engine's `stop_check`, a llama-cpp-python stopping criterion
    called after each sampled token with the context so far): notes the prompt's token count and the first
    token's time, and ends the generation at its next token once the server is shutting down."""

    def __init__(self, llm, stopping: threading.Event):
        self.llm, self.stopping = llm, stopping
        self.prompt_tokens: int | None = None
        self.first_token_at: float | None = None
        self.cut = False

    def __call__(self, input_ids, logits) -> bool:
        if self.prompt_tokens is None:
            self.prompt_tokens = len(input_ids)
            self.first_token_at = time.perf_counter()
        if self.stopping.is_set():
            self.cut = True
        return self.cut

    @contextlib.contextmanager
    def on(self, llm):
        """Hook this meter into `llm`'s generations for the duration of the block."""
        llm.stop_check = self
        try:
            yield
        finally:
            llm.stop_check = None

    def raise_if_cut(self) -> None:
        if self.cut:
            raise ShuttingDown("the server is shutting down; the generation was stopped before it ended")

    def completion_tokens(self, text: str) -> int:
        return len(self.llm.tokenize(text.encode("utf-8"), add_bos=False, special=False)) if text else 0


def _chat_text(chunk: dict) -> str:
    return (chunk["choices"][0].get("delta", {}).get("content") or "") if chunk["choices"] else ""


def _completion_text(chunk: dict) -> str:
    return (chunk["choices"][0].get("text") or "") if chunk["choices"] else ""


def chat_router(model_host, served, store, log_served_chats: bool, metrics=None, decoding=None) -> APIRouter:
    router = APIRouter()

    def pick_version(model: str | None) -> str | None:
        try:
            return model_host.resolve(model)
        except UnknownVersionError as err:
            raise model_not_found(model, str(err)) from None

    def log_chat(request_messages: list[RequestMessage], reply: str, version: str) -> None:
        if not (log_served_chats and reply.strip()):
            return
        # Only plain system/user/assistant text turns are kept as training material.
        turns = [m for m in request_messages if m.role in ("system", "user", "assistant", "developer")]
        try:
            messages = [
                # tool turns were left out above
                ChatMessage(role="system" if m.role == "developer" else cast(Role, m.role), content=m.text())
                for m in turns
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

    def _generation(session, meter: _Meter, kind: str, request, options: dict, stream: bool):
        """The one call into llama-cpp-python: a result dict, or (`stream`) an iterator of chunks that the
        caller runs under `meter.on(session.llm)`."""
        if stream:
            if kind == "chat":
                return session.llm.create_chat_completion(messages=request, stream=True, **options)
            return session.llm.create_completion(request, stream=True, **options)
        with meter.on(session.llm):
            if kind == "chat":
                return session.llm.create_chat_completion(messages=request, **options)
            return session.llm.create_completion(request, **options)

    @contextlib.contextmanager
    def _session(model: str | None, version: str | None, ab: bool):
        """model_host.session, with a version that vanished meanwhile a 404 naming the requested model."""
        try:
            with model_host.session(ab=ab, version=version) as session:
                yield session
        except UnknownVersionError as err:
            raise model_not_found(model, str(err)) from None

    def _events(
        kind: str,
        model: str | None,
        request,
        options: dict,
        version: str | None,
        include_usage: bool,
        headers: dict[str, str],
        on_done: Callable,
    ) -> Generator[bytes, None, None]:
        # The engine is taken here, on the generator's first step, never in the request handler: see
        # serve/streaming.py for why. The `with` gives it back whenever the generator is closed.
        param, text_of = ("messages", _chat_text) if kind == "chat" else ("prompt", _completion_text)
        with _session(model, version, ab=kind == "chat") as session:
            headers[VERSION_HEADER] = session.version
            if kind != "chat":
                check_token_ids(session.llm, request, "prompt")
            meter = _Meter(session.llm, model_host.stopping_event)
            started = time.perf_counter()
            response_id, pieces, last = None, [], None
            try:
                chunks = _generation(session, meter, kind, request, options, stream=True)
                # Closed before the engine goes back, whatever happens (client gone, shutdown).
                with meter.on(session.llm), contextlib.closing(chunks):
                    for chunk in chunks:
                        if meter.cut:  # llama.cpp stopped for shutdown: no finish_reason that looks like an end
                            break
                        chunk["model"] = session.version
                        response_id = response_id or chunk.get("id")
                        pieces.append(text_of(chunk))
                        last = chunk
                        yield sse(chunk)
            except (ValueError, TemplateError) as err:
                raise _llama_error(err, param) from None
            meter.raise_if_cut()
            reply = "".join(pieces)
            completion_tokens = meter.completion_tokens(reply)
            # Recorded before [DONE]: a client that rates the response right after the stream ends finds it.
            on_done(session, meter, started, reply, response_id, completion_tokens)
            if include_usage and last is not None:
                obj = "chat.completion.chunk" if kind == "chat" else "text_completion"
                prompt_tokens = meter.prompt_tokens or 0
                yield usage_chunk(response_id, obj, last["created"], session.version, prompt_tokens, completion_tokens)
            yield sse("[DONE]")

    decoding = decoding or DecodingSettings()

    @router.post("/v1/chat/completions")
    def chat_completions(body: ChatRequest):
        body.check_supported()
        messages = [m.for_llama() for m in body.messages]
        options = {
            **body.sampling(),
            # The shared decoding defaults (forge_pipeline/decoding.py): what the evaluation gate judged.
            "repeat_penalty": decoding.repeat_penalty,
            "max_tokens": body.token_limit() or decoding.max_tokens,
            "response_format": body.response_format.for_llama() if body.response_format else None,
        }
        version = pick_version(body.model)

        def done(session, meter, started, reply, response_id, completion_tokens):
            if response_id:
                latency_ms = (time.perf_counter() - started) * 1000
                served.append(
                    response_id, session.version, session.route, latency_ms, meter.prompt_tokens, completion_tokens
                )
            observe("chat", session.version, started, meter, completion_tokens)
            log_chat(body.messages, reply, session.version)

        if body.stream:
            include_usage = bool(body.stream_options and body.stream_options.include_usage)
            headers: dict[str, str] = {}  # filled by the generator's first step, sent after it
            return EventStream(
                _events("chat", body.model, messages, options, version, include_usage, headers, done), headers
            )
        with _session(body.model, version, ab=True) as session:  # A/B: the router may pick the candidate
            meter = _Meter(session.llm, model_host.stopping_event)
            started = time.perf_counter()
            try:
                result = _generation(session, meter, "chat", messages, options, stream=False)
            except (ValueError, TemplateError) as err:
                raise _llama_error(err, "messages") from None
            meter.raise_if_cut()
            usage = result.get("usage") or {}
            reply = result["choices"][0]["message"]["content"] or ""
            done(session, meter, started, reply, result["id"], usage.get("completion_tokens") or 0)
            served_version = session.version
        result["model"] = served_version
        return JSONResponse(result, headers={VERSION_HEADER: served_version})

    @router.post("/v1/completions")
    def completions(body: CompletionRequest):
        body.check_supported()
        prompts = body.prompts()
        version = pick_version(body.model)
        options = {**body.sampling(), "max_tokens": body.max_tokens, "echo": body.echo, "suffix": body.suffix}

        def done(session, meter, started, reply, response_id, completion_tokens):
            observe("completion", session.version, started, meter, completion_tokens)

        if body.stream:
            if len(prompts) != 1:
                raise unsupported("prompt", "streaming takes one prompt per request")
            include_usage = bool(body.stream_options and body.stream_options.include_usage)
            headers: dict[str, str] = {}
            return EventStream(
                _events("completion", body.model, prompts[0], options, version, include_usage, headers, done), headers
            )
        with _session(body.model, version, ab=False) as session:
            results = []
            for prompt in prompts:
                check_token_ids(session.llm, prompt, "prompt")
                meter = _Meter(session.llm, model_host.stopping_event)
                started = time.perf_counter()
                try:
                    results.append(_generation(session, meter, "completion", prompt, options, stream=False))
                except ValueError as err:
                    raise _llama_error(err, "prompt") from None
                meter.raise_if_cut()
                done(
                    session, meter, started, None, None, (results[-1].get("usage") or {}).get("completion_tokens") or 0
                )
            served_version = session.version
        result = results[0]
        if len(results) > 1:  # one choice per prompt, indexed as OpenAI does; usage summed
            result["choices"] = [{**r["choices"][0], "index": i} for i, r in enumerate(results)]
            result["usage"] = {
                key: sum((r.get("usage") or {}).get(key) or 0 for r in results)
                for key in ("prompt_tokens", "completion_tokens", "total_tokens")
            }
        result["model"] = served_version
        return JSONResponse(result, headers={VERSION_HEADER: served_version})

    return router
