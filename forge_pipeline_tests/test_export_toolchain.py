"""Real llama.cpp conversion, quantization and loading of a tiny Llama and a LoRA adapter on CPU."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

from forge_pipeline.export import gguf, verify
from forge_pipeline.export.config import ExportSettings
from forge_pipeline.export.llama_cpp import ConversionError, LlamaCppToolchain, gguf_n_params, quantize
from forge_pipeline.export.manifest import read_manifest

os.environ.setdefault("HF_HUB_OFFLINE", "1")

PROMPTS = [
    [{"role": "user", "content": "How should I plan the migration?"}],
    [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Reflect on what went well this week."}],
    [{"role": "user", "content": "Should I take the team lead role?"}],
]


@pytest.fixture(scope="module")
def tiny(serve_models, tmp_path_factory):
    """The session's tiny HF base and random LoRA adapter (conftest.serve_models; read only), and a folder of
    this module's own for what the tests export from them."""
    return {
        "root": tmp_path_factory.mktemp("tiny"),
        "base": serve_models.base_hf,
        "adapter": serve_models.adapters_hf[0],
        "base_conversion": serve_models.base_conversion,
    }


@pytest.fixture(scope="module")
def exported(tiny):
    """One export with the f16 kept, shared by the tests that only read its outputs."""
    out = tiny["root"] / "exports"
    model = gguf.export_merged_model(
        tiny["base"], tiny["adapter"], out / "run1", ExportSettings(keep_f16=True), exports_dir=out
    )
    adapter = gguf.export_adapter(tiny["adapter"], tiny["base"], out / "run1", base_gguf=model["base_gguf"])
    return {"model": model, "adapter": adapter, "out": out}


@pytest.mark.slow
def test_merged_model_converts_and_quantizes_to_q4_k_m(tiny, exported):
    from transformers import AutoModelForCausalLM

    model = exported["model"]
    stats = model["stats"]
    hf_params = sum(p.numel() for p in AutoModelForCausalLM.from_pretrained(tiny["base"]).parameters())
    assert stats["merged"]["n_params"] == hf_params  # every tensor made it into the GGUF
    # Q4_K_M is ~4.5-5 bits per weight on real models; the tiny model's metadata adds a little.
    assert 4.0 < stats["merged"]["bits_per_weight"] < 6.0
    assert 15.9 < stats["merged_f16"]["bits_per_weight"] < 17.0
    assert stats["merged"]["size_bytes"] < stats["merged_f16"]["size_bytes"] / 2.5
    run_dir = exported["out"] / "run1"
    assert sorted(p.name for p in run_dir.iterdir()) == [
        "Modelfile",
        "Modelfile.adapter",
        "adapter-f16.gguf",
        "merged-f16.gguf",
        "merged-q4_k_m.gguf",
    ]  # no staging folder, merged HF folder or partial file left behind
    modelfile = (run_dir / "Modelfile").read_text()
    assert "FROM ./merged-q4_k_m.gguf" in modelfile and 'PARAMETER stop "<|im_end|>"' in modelfile
    adapter_modelfile = (run_dir / "Modelfile.adapter").read_text()
    assert "ADAPTER ./adapter-f16.gguf" in adapter_modelfile
    assert (run_dir / adapter_modelfile.split("\n")[0].removeprefix("FROM ")).resolve() == exported["out"].joinpath(
        "base", model["base_hash"], "base-q4_k_m.gguf"
    ).resolve()


@pytest.mark.slow
def test_unknown_pre_tokenizer_declared_gpt2_and_llama_cpp_tokenizes_like_hf(tiny):
    from transformers import AutoTokenizer

    result = tiny["base_conversion"]  # LlamaCppToolchain().convert_model(tiny["base"], ...), done once per session
    assert result.declared_gpt2_pre_tokenizer  # the locally trained tokenizer's hash is unknown to llama.cpp
    hf = AutoTokenizer.from_pretrained(tiny["base"])
    texts = [
        "Read replicas add lag.",
        "  two  spaces, tabs\tand\nnewlines!",
        "émoji 🚀 and 3333 numbers",
        "<|im_start|>user\nhi<|im_end|>\n",
    ]
    with verify.open_gguf(result.path) as llm:
        for text in texts:
            assert (
                llm.tokenize(text.encode(), add_bos=False, special=True)
                == hf(text, add_special_tokens=False)["input_ids"]
            )


@pytest.mark.slow
def test_quantized_gguf_loads_generates_and_stops(exported, stopper_models, tmp_path):
    check = verify.generation_check(exported["model"]["merged_gguf"], PROMPTS, max_tokens=16)
    assert check["ok"] and check["prompts"] == 3
    assert all(o["completion_tokens"] > 0 for o in check["outcomes"])
    # A model that always answers <|im_end|> proves generation ends there rather than at max_tokens.
    f16 = stopper_models("chatml")["gguf"]  # the tiny eager-stop model, converted once per session
    quantize(f16, tmp_path / "stopper-q4.gguf", "Q4_K_M")
    stopped = verify.generation_check(tmp_path / "stopper-q4.gguf", PROMPTS, max_tokens=16)
    assert stopped["ok"] and stopped["stopped_at_end_token"] == 3 and stopped["end_token"] == "<|im_end|>"
    assert all(o["finish_reason"] == "stop" and o["completion_tokens"] < 16 for o in stopped["outcomes"])
    assert {o["finish_reason"] for o in check["outcomes"]} <= {"stop", "length"}


@pytest.mark.slow
def test_adapter_gguf_applies_to_base_and_matches_merged(exported):
    model, adapter = exported["model"], exported["adapter"]
    texts = PROMPTS  # rendered with the GGUF's own template
    base = verify.next_token_logits(model["base_f16_gguf"], texts)
    with_adapter = verify.next_token_logits(model["base_f16_gguf"], texts, lora_path=adapter["adapter_gguf"])
    merged = verify.next_token_logits(model["merged_f16_gguf"], texts)
    assert np.abs(with_adapter - base).max() > 0.1  # the adapter changes the output
    # base + adapter at run time computes what the merged model computes (f16 rounding apart).
    assert np.abs(with_adapter - merged).max() < 0.05
    assert gguf_n_params(adapter["adapter_gguf"]) == adapter["stats"]["adapter"]["n_params"] > 0
    check = verify.generation_check(model["base_gguf"], PROMPTS[:1], lora_path=adapter["adapter_gguf"])
    assert check["ok"]


@pytest.mark.slow
def test_base_gguf_is_built_once_per_base_model(tiny, exported):
    again = gguf.export_base_model(tiny["base"], exported["out"], ExportSettings(keep_f16=True))
    assert again["cached"] is True and again["timings"] == {}  # no second conversion
    assert again["base_gguf"] == exported["model"]["base_gguf"] and again["base_hash"] == exported["model"]["base_hash"]


@pytest.mark.slow
def test_q4_k_m_logit_gap_against_f16_is_measured_and_small(exported):
    model = exported["model"]
    gap = verify.logit_gap(model["merged_gguf"], model["merged_f16_gguf"], PROMPTS)
    print("q4_k_m vs f16:", json.dumps(gap))
    assert 0.0 < gap["max_abs_gap"] < ExportSettings().max_logit_gap
    assert 0.0 <= gap["argmax_agreement"] <= 1.0 and gap["prompts"] == 3


@pytest.mark.slow
def test_failure_between_conversion_and_quantization_leaves_nothing(tiny, tmp_path):
    out = tmp_path / "exports"
    manifest = tmp_path / "serve" / "adapter_manifest.json"
    with pytest.raises(ConversionError, match="NOT_A_TYPE"):
        gguf.export_merged_model(
            tiny["base"],
            tiny["adapter"],
            out / "run1",
            ExportSettings(quant_type="NOT_A_TYPE", keep_f16=True),
            exports_dir=out,
        )
    # The merged f16 GGUF was written in staging, then quantization failed: nothing reached the run folder.
    assert list((out / "run1").iterdir()) == []
    assert not list(out.rglob("*.gguf")) and not list(out.rglob("*.partial"))
    assert read_manifest(manifest)["versions"] == {} and not manifest.exists()


def test_missing_converter_folder_is_a_clear_error(tmp_path):
    with pytest.raises(ConversionError, match="converter_dir"):
        LlamaCppToolchain(tmp_path / "nowhere")
    with pytest.raises(ConversionError, match="Q4_K_M"):
        quantize(tmp_path / "a.gguf", tmp_path / "b.gguf", "Q9_ZZ")


def test_adapter_training_lm_head_is_refused_before_conversion(tmp_path):
    (tmp_path / "adapter_config.json").write_text(json.dumps({"target_modules": ["q_proj", "lm_head"]}))
    with pytest.raises(ValueError, match=r"adapter_config.json: field 'target_modules' includes \['lm_head'\]"):
        gguf.export_adapter(tmp_path, tmp_path, tmp_path / "out")
    assert not (tmp_path / "out").exists()
