"""The demo base model: deterministic, a normal HF folder, generates and renders ChatML with assistant masks."""

from __future__ import annotations

import hashlib
import json

import pytest

from forge_pipeline.settings import load_settings
from forge_pipeline.train.base_models import resolve_base_model
from forge_pipeline.train.config import TinyModelSettings
from forge_pipeline.train.tiny_model import build_tiny_llama

TEXTS = ["Write the rollback step before touching production.", "Short linked notes beat long notes."] * 10
CFG = TinyModelSettings(vocab_size=400)


def _digest(folder):
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir()) if p.is_file()}


def test_tiny_model_is_deterministic_and_generates_chatml(tmp_path):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    first = build_tiny_llama(TEXTS, tmp_path / "a", CFG)
    second = build_tiny_llama(TEXTS, tmp_path / "b", CFG)
    assert _digest(first) == _digest(second)
    assert {"config.json", "model.safetensors", "tokenizer.json", "chat_template.jinja", "README.md"} <= set(
        _digest(first)
    )
    assert "DEMO MODEL" in (first / "README.md").read_text()
    assert not list(tmp_path.glob(".*partial"))  # the atomic staging folder is gone

    config = json.loads((first / "config.json").read_text())
    assert (config["hidden_size"], config["intermediate_size"], config["num_hidden_layers"]) == (256, 512, 2)
    assert (config["num_attention_heads"], config["num_key_value_heads"], config["tie_word_embeddings"]) == (
        4,
        2,
        False,
    )

    tokenizer = AutoTokenizer.from_pretrained(first)
    model = AutoModelForCausalLM.from_pretrained(first)
    assert tokenizer.eos_token == "<|im_end|>" and tokenizer.pad_token not in (None, "<|im_end|>")
    assert model.config.eos_token_id == tokenizer.convert_tokens_to_ids("<|im_end|>")
    messages = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "Short notes."}]
    assert tokenizer.apply_chat_template(messages, tokenize=False) == (
        "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\nShort notes.<|im_end|>\n"
    )
    encoded = tokenizer.apply_chat_template(messages, return_dict=True, return_assistant_tokens_mask=True)
    trained = [t for t, m in zip(encoded["input_ids"], encoded["assistant_masks"]) if m]
    assert tokenizer.decode(trained) == "Short notes.<|im_end|>"

    prompt = tokenizer.apply_chat_template(
        messages[:1], add_generation_prompt=True, return_tensors="pt", return_dict=True
    )
    assert tokenizer.decode(prompt["input_ids"][0]).endswith("<|im_start|>assistant\n")
    with torch.no_grad():
        out = model.generate(**prompt, max_new_tokens=4, do_sample=False)
    assert out.shape[1] > prompt["input_ids"].shape[1]
    # byte-level BPE round-trips text it never saw
    assert tokenizer.decode(tokenizer("Ünïcode ✓ text", add_special_tokens=False)["input_ids"]) == "Ünïcode ✓ text"


def test_resolve_base_model_builds_once_and_validates_configured_path(tmp_path):
    settings = load_settings(data_root=tmp_path, train={"base_model": "tiny-demo", "tiny_model": CFG.model_dump()})
    resolved = resolve_base_model(settings, TEXTS)
    assert resolved["is_demo_model"] and resolved["name"].startswith("tiny-demo-llama-")
    mtime = (tmp_path / "models" / resolved["name"] / "model.safetensors").stat().st_mtime_ns
    assert resolve_base_model(settings, TEXTS) == resolved
    assert (tmp_path / "models" / resolved["name"] / "model.safetensors").stat().st_mtime_ns == mtime  # reused

    local = load_settings(data_root=tmp_path, train={"base_model": resolved["path"]})
    configured = resolve_base_model(local, [])
    assert (configured["path"], configured["name"], configured["is_demo_model"]) == (
        resolved["path"],
        resolved["name"],
        False,
    )
    assert configured["parameters"] == resolved["parameters"] > 0

    missing = load_settings(data_root=tmp_path, train={"base_model": "nobody/not-a-cached-model"})
    with pytest.raises(FileNotFoundError, match="nobody/not-a-cached-model.*offline"):
        resolve_base_model(missing, TEXTS)
    with pytest.raises(ValueError, match="no non-empty texts"):
        build_tiny_llama(["", "  "], tmp_path / "empty", CFG)
