"""Request schemas of the server's routes in one module (chat completions, completions, embeddings, search,
fine-tuning jobs), with OpenAI's names, ranges and defaults. What llama-cpp-python can do is passed on (`sampling()`); what would change the answer and cannot
be honoured is a 400 naming the parameter (`check_supported()`); what carries no meaning for a local server
(`store`, `metadata`, `service_tier`, `prompt_cache_key`, `safety_identifier`, `user`) is accepted and ignored,
so SDK-based agents that always send them work unchanged (docs/api.md)."""

from __future__ import annotations

from typing import Any, Literal, cast

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from forge_pipeline.serve.errors import invalid, unsupported

# Every generation response names the manifest version that produced it (chat, completions, downloads).
VERSION_HEADER = "x-forge-model-version"
MAX_STOP = 4  # OpenAI's limit on stop sequences
UNHONOURED_CHAT_FIELDS = {
    "audio": "the served models answer in text only",
    "prediction": "predicted outputs need speculative decoding, which this server does not run",
    "reasoning_effort": "the served models are not reasoning models",
    "verbosity": "the served models have no verbosity control",
    "web_search_options": "this server has no web search",
}


def one_or_many(value: str | list[str] | list[int] | list[list[int]]) -> list[str | list[int]]:
    """A prompt or embeddings input as OpenAI takes it (a text, texts, token ids, or lists of token ids) as a list
    of texts or token-id lists."""
    if isinstance(value, str) or (value and isinstance(value[0], int)):
        return [value]
    return list(cast(list[str] | list[list[int]], value))


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
        schema = (self.json_schema.schema_ if self.json_schema else None) or {"type": "object"}
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
    # Accepted and ignored: they label or route the request on OpenAI's side and change no answer here.
    user: str | None = None
    store: bool | None = None
    metadata: dict[str, str] | None = None
    service_tier: str | None = None
    prompt_cache_key: str | None = None
    safety_identifier: str | None = None

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
    # Known to OpenAI, and they would change the answer: refused by name rather than "unrecognized".
    modalities: list[str] | None = None
    audio: dict[str, Any] | None = None
    prediction: dict[str, Any] | None = None
    reasoning_effort: str | None = None
    verbosity: str | None = None
    web_search_options: dict[str, Any] | None = None

    def check_supported(self) -> None:
        super().check_supported()
        if self.modalities not in (None, ["text"]):
            raise unsupported("modalities", "the served models answer in text only")
        for name, why in UNHONOURED_CHAT_FIELDS.items():
            if getattr(self, name) is not None:
                raise unsupported(name, why)
        for name in ("tools", "functions"):
            if getattr(self, name):
                raise unsupported(name, "the served models are not trained for tool calls")
        for name in ("tool_choice", "function_call"):
            if getattr(self, name) not in (None, "none"):
                raise unsupported(name, "the served models are not trained for tool calls")
        if self.logprobs or self.top_logprobs:
            raise unsupported("logprobs" if self.logprobs else "top_logprobs")

    def token_limit(self) -> int | None:
        # max_completion_tokens is OpenAI's current name (LangChain sends it); max_tokens the older one. None: the
        # server's decoding.max_tokens.
        return self.max_completion_tokens or self.max_tokens


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
        prompts = one_or_many(self.prompt)
        if not prompts or any(len(p) == 0 for p in prompts):
            raise invalid("prompt must not be empty", param="prompt")
        return prompts


MAX_INPUTS = 2048  # OpenAI's own limit on inputs per embeddings request


class EmbeddingsRequest(BaseModel):
    """OpenAI's embeddings request. `input` may be text, texts, or token ids (one array or several), as the
    SDK and LangChain send them; `encoding_format` base64 is the SDK's default."""

    model_config = ConfigDict(extra="forbid")

    model: str | None = None  # the server embeds with its configured backend; the answer names it
    input: str | list[str] | list[int] | list[list[int]]
    encoding_format: Literal["float", "base64"] = "float"
    dimensions: int | None = Field(default=None, gt=0)
    user: str | None = None  # an end-user id for the caller's own records; changes nothing here


class SearchRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    query: str = Field(min_length=1)
    k: int = Field(default=5, ge=1, le=100)
    source: str | None = Field(default=None, description="Only this source: vault, conversation, interaction, import.")


class JobRequest(BaseModel):
    """OpenAI's fine-tuning job request (`POST /v1/fine_tuning/jobs`); fine_tuning_routes.py checks the
    hyperparameters and the method."""

    model_config = ConfigDict(extra="forbid")

    model: str
    # Forge's extension: without a training file the job retrains on the sources as they are (notes, interactions,
    # files uploaded earlier), which is what the playground's "train now" asks for.
    training_file: str | None = None
    validation_file: str | None = None
    # Checked by requested_hyperparameters (not pydantic) so an error names `hyperparameters.n_epochs`.
    hyperparameters: dict[str, Any] | None = None
    suffix: str | None = Field(default=None, max_length=64)
    seed: int | None = None
    metadata: dict[str, str] | None = None
    integrations: list[dict[str, Any]] | None = None
    method: dict[str, Any] | None = None
