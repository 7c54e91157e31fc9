"""The one generation path of the OpenAI inference routes (chat completions and completions, streamed or not),
as vLLM's OpenAIServing is to its routers: the routes in chat_routes.py only hand the request here.

What llama-cpp-python can do is passed to it (sampling, `stop`, `seed`, `response_format` json_object /
json_schema as a grammar, `stream`, `stream_options.include_usage`); what it cannot do is a 400 naming the
parameter (serve/protocol.py's `check_supported`), never a silent drop. `model` picks the version (see
ModelHost.resolve). Every generation, chat or completion, streamed or not, runs through `_call` under one
stopping criterion (`_Meter`) that notes the prompt's token count and the first token's time and stops at the
next token on shutdown (the request then gets an OpenAI error, never a truncated answer that looks complete).
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass
from typing import Any

from fastapi.responses import JSONResponse
from jinja2 import TemplateError
from starlette.responses import Response

from forge_pipeline.decoding import DecodingSettings
from forge_pipeline.records import ChatMessage, Role
from forge_pipeline.serve.engine import ShuttingDown
from forge_pipeline.serve.errors import APIError, invalid, unsupported
from forge_pipeline.serve.interactions import InteractionIn
from forge_pipeline.serve.protocol import VERSION_HEADER, ChatRequest, CompletionRequest, RequestMessage
from forge_pipeline.serve.streaming import EventStream, sse

# The request roles a served chat is logged with, as the role Forge trains on (a developer message is OpenAI's
# newer name for the system message).
_TRAINING_ROLES: dict[str, Role] = {"system": "system", "developer": "system", "user": "user", "assistant": "assistant"}


@dataclass(frozen=True)
class _Kind:
    """What differs between the two resources on the shared path."""

    name: str  # the metrics label
    param: str  # the request field a prompt that llama.cpp refuses is about
    chunk_object: str  # `object` of a streamed chunk
    ab: bool  # whether the A/B router may send the request to the candidate


CHAT = _Kind("chat", "messages", "chat.completion.chunk", ab=True)
COMPLETION = _Kind("completion", "prompt", "text_completion", ab=False)
# What a finished generation reports: (session, meter, started, reply, response_id, completion_tokens).
Done = Callable[[Any, "_Meter", float, str, "str | None", int], None]


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


def _prompt_refused(err: Exception, param: str) -> APIError:
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


@contextlib.contextmanager
def _refusals_as_400(kind: _Kind) -> Iterator[None]:
    # The only place llama.cpp's own errors are turned into the request's: everything else is the handlers'.
    try:
        yield
    except (ValueError, TemplateError) as err:
        raise _prompt_refused(err, kind.param) from None


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


def _text_of(kind: _Kind, result: dict) -> str:
    """The generated text of a result (`message`) or a streamed chunk (`delta`), chat or completion."""
    if not result["choices"]:
        return ""
    choice = result["choices"][0]
    if kind is COMPLETION:
        return choice.get("text") or ""
    return ((choice.get("message") or choice.get("delta") or {}).get("content")) or ""


def _merged(results: list[dict]) -> dict:
    """One response for several prompts: one choice per prompt, indexed as OpenAI does; usage summed."""
    result = results[0]
    if len(results) > 1:
        result["choices"] = [{**r["choices"][0], "index": i} for i, r in enumerate(results)]
        result["usage"] = {
            key: sum((r.get("usage") or {}).get(key) or 0 for r in results)
            for key in ("prompt_tokens", "completion_tokens", "total_tokens")
        }
    return result


class OpenAIServing:
    """Chat completions and completions on the model host's versions, with what each response leaves behind:
    the served log (which version answered a response id), the metrics, and (serve.log_served_chats) the chat."""

    def __init__(self, model_host, served, store, log_served_chats: bool, metrics=None, decoding=None):
        self.model_host = model_host
        self.served = served
        self.store = store
        self.log_served_chats = log_served_chats
        self.metrics = metrics
        self.decoding = decoding or DecodingSettings()

    # -- the two resources --------------------------------------------------------------------------------
    def chat(self, body: ChatRequest) -> Response:
        body.check_supported()
        messages = [m.for_llama() for m in body.messages]
        options = {
            **body.sampling(),
            # The shared decoding defaults (forge_pipeline/decoding.py): what the evaluation gate judged.
            "repeat_penalty": self.decoding.repeat_penalty,
            "max_tokens": body.token_limit() or self.decoding.max_tokens,
            "response_format": body.response_format.for_llama() if body.response_format else None,
        }
        version = self.model_host.resolve(body.model)

        def done(session, meter, started, reply, response_id, completion_tokens):
            if response_id:
                latency_ms = (time.perf_counter() - started) * 1000
                self.served.append(
                    response_id, session.version, session.route, latency_ms, meter.prompt_tokens, completion_tokens
                )
            self._observe(CHAT, session.version, started, meter, completion_tokens)
            self._log_chat(body.messages, reply, session.version)

        return self._answer(CHAT, body, [messages], options, version, done)

    def completion(self, body: CompletionRequest) -> Response:
        body.check_supported()
        prompts = body.prompts()
        version = self.model_host.resolve(body.model)
        options = {**body.sampling(), "max_tokens": body.max_tokens, "echo": body.echo, "suffix": body.suffix}
        if body.stream and len(prompts) != 1:
            raise unsupported("prompt", "streaming takes one prompt per request")

        def done(session, meter, started, reply, response_id, completion_tokens):
            self._observe(COMPLETION, session.version, started, meter, completion_tokens)

        return self._answer(COMPLETION, body, prompts, options, version, done)

    # -- the shared path ----------------------------------------------------------------------------------
    def _answer(self, kind: _Kind, body, prompts: list, options: dict, version: str | None, done: Done) -> Response:
        """A JSON response, or (`stream`) an event stream; every response names the version that produced it."""
        if body.stream:
            include_usage = bool(body.stream_options and body.stream_options.include_usage)
            headers: dict[str, str] = {}  # filled by the generator's first step, sent after it
            events = self._events(kind, prompts[0], options, version, include_usage, headers, done)
            return EventStream(events, headers)
        with self.model_host.session(ab=kind.ab, version=version) as session:
            results = [self._complete(kind, session, prompt, options, done) for prompt in prompts]
            served_version = session.version
        result = _merged(results)
        result["model"] = served_version
        return JSONResponse(result, headers={VERSION_HEADER: served_version})

    def _call(self, kind: _Kind, llm, prompt, options: dict, stream: bool):
        """The one call into llama-cpp-python: a result dict, or (`stream`) an iterator of chunks."""
        if kind is CHAT:
            return llm.create_chat_completion(messages=prompt, stream=stream, **options)
        return llm.create_completion(prompt, stream=stream, **options)

    def _start(self, kind: _Kind, session, prompt) -> tuple[_Meter, float]:
        if kind is COMPLETION:
            check_token_ids(session.llm, prompt, "prompt")
        return _Meter(session.llm, self.model_host.stopping_event), time.perf_counter()

    def _complete(self, kind: _Kind, session, prompt, options: dict, done: Done) -> dict:
        meter, started = self._start(kind, session, prompt)
        with _refusals_as_400(kind), meter.on(session.llm):
            result = self._call(kind, session.llm, prompt, options, stream=False)
        meter.raise_if_cut()
        completion_tokens = (result.get("usage") or {}).get("completion_tokens") or 0
        done(session, meter, started, _text_of(kind, result), result["id"], completion_tokens)
        return result

    def _events(
        self,
        kind: _Kind,
        prompt,
        options: dict,
        version: str | None,
        include_usage: bool,
        headers: dict[str, str],
        done: Done,
    ) -> Generator[bytes, None, None]:
        # The engine is taken here, on the generator's first step, never in the request handler: see
        # serve/streaming.py for why. The `with` gives it back whenever the generator is closed.
        with self.model_host.session(ab=kind.ab, version=version) as session:
            headers[VERSION_HEADER] = session.version
            meter, started = self._start(kind, session, prompt)
            response_id, pieces, last = None, [], None
            with _refusals_as_400(kind):
                chunks = self._call(kind, session.llm, prompt, options, stream=True)
                # Closed before the engine goes back, whatever happens (client gone, shutdown).
                with meter.on(session.llm), contextlib.closing(chunks):
                    for chunk in chunks:
                        if meter.cut:  # llama.cpp stopped for shutdown: no finish_reason that looks like an end
                            break
                        chunk["model"] = session.version
                        response_id = response_id or chunk.get("id")
                        pieces.append(_text_of(kind, chunk))
                        last = chunk
                        yield sse(chunk)
            meter.raise_if_cut()
            reply = "".join(pieces)
            completion_tokens = meter.completion_tokens(reply)
            # Recorded before [DONE]: a client that rates the response right after the stream ends finds it.
            done(session, meter, started, reply, response_id, completion_tokens)
            if include_usage and last is not None:
                prompt_tokens = meter.prompt_tokens or 0
                yield usage_chunk(
                    response_id, kind.chunk_object, last["created"], session.version, prompt_tokens, completion_tokens
                )
            yield sse("[DONE]")

    # -- what a response leaves behind --------------------------------------------------------------------
    def _observe(self, kind: _Kind, version: str, started: float, meter: _Meter, completion_tokens: int) -> None:
        if self.metrics is not None:
            self.metrics.generation(
                kind.name,
                version,
                meter.prompt_tokens,
                completion_tokens,
                None if meter.first_token_at is None else meter.first_token_at - started,
            )

    def _log_chat(self, request_messages: list[RequestMessage], reply: str, version: str) -> None:
        if not (self.log_served_chats and reply.strip()):
            return
        # Only plain system/user/assistant text turns are kept as training material.
        turns = [m for m in request_messages if m.role in _TRAINING_ROLES]
        try:
            messages = [ChatMessage(role=_TRAINING_ROLES[m.role], content=m.text()) for m in turns] + [
                ChatMessage(role="assistant", content=reply)
            ]
            self.store.append(InteractionIn(messages=messages, model_version=version))
        except ValueError:
            pass  # a conversation the record format cannot hold (empty turns, tool calls) is served, not logged
