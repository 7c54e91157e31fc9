"""Decoding defaults shared by serving (llama.cpp) and evaluation (transformers): one place, so the answers the
gate judges are decoded the way the served model answers (docs/decoding.md).

Small models (SmolLM2-135M, 1-3B instruct models) fall into loops under plain greedy or low-temperature
decoding ("I'm not sure. I'm not sure."); a mild repetition penalty is the standard cure both runtimes
implement: llama.cpp's `repeat_penalty` and transformers' `repetition_penalty` divide the logit of a token
already seen (CTRL-style). llama.cpp looks back over the last 64 tokens, transformers over the whole
sequence; at these lengths the effect is the same order.
"""

from __future__ import annotations

from pydantic import Field

from forge_pipeline.section import Section


class DecodingSettings(Section):
    """How replies are decoded when a request does not say otherwise (serving) and always (evaluation)."""

    repeat_penalty: float = Field(
        default=1.15,
        ge=1.0,
        le=2.0,
        description="Penalty on tokens already in the context (1.0 = off). 1.1-1.3 stops the loops small models "
        "fall into without bending their wording; higher starts to avoid words the answer needs.",
    )
    max_tokens: int = Field(
        default=256,
        gt=0,
        description="Reply length limit when a request gives none; the evaluation uses it too, so a reply the "
        "gate calls 'cut' is one a person would see cut.",
    )
    temperature: float = Field(
        default=0.7,
        ge=0.0,
        le=2.0,
        description="Serving's default sampling temperature; the evaluation decodes greedily (temperature 0) so "
        "base and tuned are compared on the same deterministic answers.",
    )
    top_p: float = Field(default=0.95, gt=0.0, le=1.0, description="Serving's default nucleus sampling cut-off.")
