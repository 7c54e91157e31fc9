"""The one test on the real default base model, SmolLM2-135M-Instruct (packaged GGUF -> HF folder): a few LoRA
steps lower the loss on a repeated batch, and the merged (Q4_K_M) and adapter GGUFs keep the pipeline's contract
in llama-cpp-python: they load, render chats with the GGUF's own template, stop on that template's end token, and
the adapter changes the logits.

What a 4-step run on four made-up examples answers is not part of the contract: it depends on the machine's CPU
kernels and thread count (on some machines the trained model ends its turn at once). So the reply checked for
content is the untrained base model's, a real instruct model, and the trained files are checked for what the
pipeline guarantees whatever they learned."""

from __future__ import annotations

import os

import pytest

from forge_pipeline.settings import load_settings

os.environ.setdefault("HF_HUB_OFFLINE", "1")

HP = {
    "base_model": "smollm2-135m-instruct",
    "max_steps": 4,
    "per_device_train_batch_size": 4,
    "gradient_accumulation_steps": 1,
    "learning_rate": 1e-3,
    "logging_steps": 1,
    "save_steps": 100,
    "max_length": 96,
    "num_train_epochs": 1,
}


@pytest.mark.slow
def test_smollm2_trains_exports_and_serves_a_reply_that_stops(tmp_path):
    from forge_pipeline.export import gguf, verify
    from forge_pipeline.export.config import ExportSettings
    from forge_pipeline.train.base_models import resolve_base_model
    from forge_pipeline.train.sft import train_lora
    from forge_pipeline_tests.model_fixtures import write_tiny_dataset_version

    settings = load_settings(data_root=tmp_path / "data", train=HP)
    settings.paths.ensure()
    base = resolve_base_model(settings, [])
    assert base["name"] == "smollm2-135m-instruct" and not base["is_demo_model"] and base["licence"] == "Apache-2.0"
    assert 130e6 < base["parameters"] < 140e6

    # Four examples, one batch, seen four times: the loss on that batch must go down.
    version = write_tiny_dataset_version(tmp_path / "dataset", n=4, n_validation=0, save_hf=False)
    result = train_lora(
        version["path"],
        base["path"],
        settings.paths.adapters / "run",
        settings.train,
        settings.tracking_uri,
        settings.mlflow_experiment,
        base_model_name=base["name"],
    )
    assert result["metrics"]["global_step"] == 4
    assert result["metrics"]["final_loss"] < result["metrics"]["first_loss"]

    exports = settings.paths.exports
    merged = gguf.export_merged_model(
        base["path"], result["adapter_dir"], exports / "run", ExportSettings(), exports_dir=exports
    )
    # SmolLM2's tokenizer is one llama.cpp knows: no gpt-2 fallback.
    assert merged["declared_gpt2_pre_tokenizer"] is False and merged["pre_tokenizer"] == "smollm"
    adapter = gguf.export_adapter(result["adapter_dir"], base["path"], exports / "run", base_gguf=merged["base_gguf"])
    assert "TEMPLATE" not in (exports / "run" / "Modelfile").read_text()

    prompts = [[{"role": "user", "content": "Say hello in three words."}]]
    with verify.open_gguf(merged["base_gguf"]) as llm:
        assert verify.end_token(llm) == "<|im_end|>"
        assert verify.render_prompt(llm, prompts[0]).endswith("<|im_start|>assistant\n")
    # The base model answers and stops on its own: a reply with content, ended by the end token, not the limit.
    base_check = verify.generation_check(merged["base_gguf"], prompts, max_tokens=64)
    assert base_check["outcomes"][0]["chars"] > 0 and base_check["outcomes"][0]["finish_reason"] == "stop", base_check
    for model_path, lora in ((merged["merged_gguf"], None), (merged["base_gguf"], adapter["adapter_gguf"])):
        check = verify.generation_check(model_path, prompts, max_tokens=64, lora_path=lora)
        # ok: every reply ended at the end token or the limit, and the end token's text never leaked into it.
        assert check["ok"] and check["end_token"] == "<|im_end|>", check

    # The trained weights reach both exports: their next-token logits differ from the base model's.
    base_logits = verify.next_token_logits(merged["base_gguf"], prompts)
    for model_path, lora in ((merged["merged_gguf"], None), (merged["base_gguf"], adapter["adapter_gguf"])):
        tuned_logits = verify.next_token_logits(model_path, prompts, lora_path=lora)
        assert abs(tuned_logits - base_logits).max() > 1e-2, model_path
