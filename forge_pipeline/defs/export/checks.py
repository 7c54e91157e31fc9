"""Asset checks on the exports: each GGUF loads and generates (and stops), and quantization stays close to f16."""

from __future__ import annotations

import tempfile
from pathlib import Path

import dagster as dg

from forge_pipeline.defs.export.resources import LlamaCppToolchainResource
from forge_pipeline.defs.resources import ForgeSettingsResource
from forge_pipeline.export import gguf, publish, verify
from forge_pipeline.export.evaluate import load_eval_prompts
from forge_pipeline.export.handoff import GgufAdapter, GgufModel
from forge_pipeline.train.outputs import TrainedAdapter

CHECK_PROMPTS = 8  # enough to see a broken model; the full set runs in adapter_evaluation
CHECK_MAX_TOKENS = 96  # room for a short real answer to end by itself


def _prompts(settings) -> list[list[dict]]:
    return [p["messages"] for p in load_eval_prompts(settings.eval_prompts)[:CHECK_PROMPTS]]


@dg.asset_check(asset="gguf_model", blocking=True)
def gguf_model_generates(forge: ForgeSettingsResource, gguf_model: GgufModel) -> dg.AssetCheckResult:
    """The merged and base GGUFs load in llama-cpp-python and generate with the GGUF's own chat template, each
    reply ending at the template's end token or max tokens; a real (non-demo) model must end at least one reply
    with its end token (finish reason `stop`), or it would never stop by itself when served."""
    settings = forge.get()
    merged = verify.generation_check(gguf_model.merged_gguf, _prompts(settings), max_tokens=CHECK_MAX_TOKENS)
    base = verify.generation_check(gguf_model.base_gguf, _prompts(settings)[:2], max_tokens=CHECK_MAX_TOKENS)
    stops = merged["stopped_at_end_token"] > 0 or gguf_model.is_demo_model
    return dg.AssetCheckResult(
        passed=merged["ok"] and base["ok"] and stops,
        metadata={
            "merged_prompts": merged["prompts"],
            "merged_stopped_at_end_token": merged["stopped_at_end_token"],
            "end_token": merged["end_token"],
            "base_ok": base["ok"],
            "outcomes": dg.MetadataValue.json(merged["outcomes"]),
        },
    )


@dg.asset_check(asset="gguf_model", additional_ins={"lora_adapter": dg.AssetIn("lora_adapter")})
def gguf_model_quantization_gap(
    forge: ForgeSettingsResource,
    llama_cpp_toolchain: LlamaCppToolchainResource,
    lora_adapter: TrainedAdapter,
    gguf_model: GgufModel,
) -> dg.AssetCheckResult:
    """Quantized vs f16 next-token logits on the prompt set (max abs gap, argmax agreement); the merged f16
    is rebuilt in a temporary folder when the settings do not keep it."""
    settings = forge.get()
    prompts = _prompts(settings)
    base_gap = verify.logit_gap(gguf_model.base_gguf, gguf_model.base_f16_gguf, prompts)
    if gguf_model.merged_f16_gguf:
        merged_gap = verify.logit_gap(gguf_model.merged_gguf, gguf_model.merged_f16_gguf, prompts)
    else:
        info = publish.adapter_info(lora_adapter)
        with tempfile.TemporaryDirectory(dir=settings.paths.cache) as scratch:
            merged_dir = gguf.merge_adapter(info.base_model_dir, info.adapter_dir, Path(scratch) / "merged")
            f16 = (
                llama_cpp_toolchain.get(settings.export)
                .convert_model(merged_dir, Path(scratch) / "merged-f16.gguf")
                .path
            )
            merged_gap = verify.logit_gap(gguf_model.merged_gguf, f16, prompts)
    bound = settings.export.max_logit_gap
    return dg.AssetCheckResult(
        passed=merged_gap["max_abs_gap"] <= bound and base_gap["max_abs_gap"] <= bound,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={
            "merged_max_abs_gap": merged_gap["max_abs_gap"],
            "merged_argmax_agreement": merged_gap["argmax_agreement"],
            "base_max_abs_gap": base_gap["max_abs_gap"],
            "base_argmax_agreement": base_gap["argmax_agreement"],
            "bound": bound,
            "quant_type": gguf_model.quant_type,
        },
    )


@dg.asset_check(asset="gguf_adapter", blocking=True)
def gguf_adapter_applies(forge: ForgeSettingsResource, gguf_adapter: GgufAdapter) -> dg.AssetCheckResult:
    """The adapter GGUF applies to the base GGUF, generates and stops, and changes the base's logits."""
    settings = forge.get()
    prompts = _prompts(settings)
    base, adapter = gguf_adapter.base_f16_gguf, gguf_adapter.adapter_gguf
    generated = verify.generation_check(base, prompts[:2], lora_path=adapter)
    change = float(
        abs(verify.next_token_logits(base, prompts[:4], adapter) - verify.next_token_logits(base, prompts[:4])).max()
    )
    return dg.AssetCheckResult(
        passed=generated["ok"] and change > 0.0,
        metadata={
            "max_logit_change_vs_base": change,
            "generation_ok": generated["ok"],
        },
    )
