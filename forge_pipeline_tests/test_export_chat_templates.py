"""No chat format is assumed anywhere: two template families (ChatML and Llama 3) on tiny tokenizers, through
training labels, evaluation generation, GGUF conversion, the Modelfile and a served (llama-cpp-python chat) reply."""

from __future__ import annotations

import os

import pytest

from forge_pipeline.export import gguf, verify
from forge_pipeline.export.llama_cpp import gguf_metadata
from forge_pipeline.train.chat_tokens import assistant_token_labels

os.environ.setdefault("HF_HUB_OFFLINE", "1")

FAMILIES = {"chatml": "<|im_end|>", "llama3": "<|eot_id|>"}
CHAT = [
    {"role": "system", "content": "Be brief."},
    {"role": "user", "content": "Plan the migration?"},
    {"role": "assistant", "content": "Rollback step first."},
    {"role": "user", "content": "And then?"},
    {"role": "assistant", "content": "Short notes, linked often."},
]


@pytest.fixture(scope="module", params=sorted(FAMILIES))
def stopper(request, stopper_models):
    """A tiny model of one template family that always answers its end-of-turn token, converted to GGUF (the
    session's, conftest.stopper_models)."""
    return {"family": request.param, "end": FAMILIES[request.param], **stopper_models(request.param)}


def test_training_labels_are_the_assistant_turns_with_their_end_token(stopper):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(stopper["hf"])
    ids, labels = assistant_token_labels(tokenizer, CHAT, max_length=512)
    kept = tokenizer.decode([t for t in labels if t != -100]).strip()
    end = stopper["end"]
    assert kept.replace("\n", "") == f"Rollback step first.{end}Short notes, linked often.{end}"
    assert "Plan the migration" not in kept and "Be brief" not in kept
    if stopper["family"] == "llama3":  # the template writes BOS itself: exactly one, first
        assert ids[0] == tokenizer.bos_token_id and ids.count(tokenizer.bos_token_id) == 1


def test_evaluation_generation_stops_at_the_models_own_end_token(stopper):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from forge_pipeline.export.evaluate import generate_batch, stop_token_ids

    tokenizer = AutoTokenizer.from_pretrained(stopper["hf"])
    model = AutoModelForCausalLM.from_pretrained(stopper["hf"], dtype=torch.float32)
    assert stop_token_ids(model, tokenizer) == [tokenizer.convert_tokens_to_ids(stopper["end"])]
    outputs = generate_batch(model, tokenizer, [CHAT[:2], CHAT[:4]], max_new_tokens=8)
    assert all(o["stopped"] and o["completion_tokens"] == 1 and o["text"] == "" for o in outputs)


@pytest.mark.slow
def test_gguf_keeps_the_template_and_a_served_reply_stops_at_its_end_token(stopper, tmp_path):
    from transformers import AutoTokenizer

    meta = gguf_metadata(stopper["gguf"])
    assert meta["tokenizer.chat_template"] == AutoTokenizer.from_pretrained(stopper["hf"]).chat_template
    # Our locally trained tokenizers are unknown to llama.cpp: the fallback is declared and said so.
    assert stopper["converted"].declared_gpt2_pre_tokenizer and stopper["converted"].pre_tokenizer == "gpt-2"

    check = verify.generation_check(stopper["gguf"], [CHAT[:2], CHAT[:4]], max_tokens=16)
    assert check["end_token"] == stopper["end"]
    assert check["ok"] and check["stopped_at_end_token"] == 2
    assert all(o["finish_reason"] == "stop" and not o["leaked_stop_token"] for o in check["outcomes"])

    modelfile = gguf.modelfile("./model-f16.gguf", stopper["gguf"])
    assert "TEMPLATE" not in modelfile  # Ollama takes the template stored in the GGUF
    assert f'PARAMETER stop "{stopper["end"]}"' in modelfile and modelfile.startswith("FROM ./model-f16.gguf")
