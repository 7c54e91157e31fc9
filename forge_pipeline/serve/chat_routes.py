"""OpenAI's chat completions and (legacy) completions resources: `POST /v1/chat/completions`, `POST /v1/completions`.

Only routing: the request schemas are serve/protocol.py's, the generation (streamed or not) is
serve/serving.py's, and errors are the app's handlers' (serve/errors.py).
"""

from __future__ import annotations

from fastapi import APIRouter, Depends

from forge_pipeline.serve import dependencies as deps
from forge_pipeline.serve.protocol import ChatRequest, CompletionRequest
from forge_pipeline.serve.serving import OpenAIServing

router = APIRouter()


@router.post("/v1/chat/completions")
def chat_completions(body: ChatRequest, serving: OpenAIServing = Depends(deps.openai_serving)):
    return serving.chat(body)


@router.post("/v1/completions")
def completions(body: CompletionRequest, serving: OpenAIServing = Depends(deps.openai_serving)):
    return serving.completion(body)
