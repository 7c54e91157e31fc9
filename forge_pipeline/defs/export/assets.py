"""GGUF export: the merged model and the adapter alone, thin assets over forge_pipeline.export.steps (the same steps
the DPO candidate runs)."""

from __future__ import annotations

import dagster as dg

from forge_pipeline.defs.export.resources import LlamaCppToolchainResource
from forge_pipeline.defs.resources import ForgeSettingsResource
from forge_pipeline.export import publish, steps
from forge_pipeline.export.handoff import Evaluation, GgufAdapter, GgufModel
from forge_pipeline.train.outputs import TrainedAdapter


def _timings_md(timings: dict, stats: dict) -> str:
    lines = ["| file | size (bytes) | params | bits/weight |", "| --- | --- | --- | --- |"]
    lines += [
        f"| {name} | {s['size_bytes']:,} | {s['n_params']:,} | {s['bits_per_weight']} |" for name, s in stats.items()
    ]
    lines += ["", "| stage | seconds |", "| --- | --- |"] + [f"| {k} | {v} |" for k, v in timings.items()]
    return "\n".join(lines)


@dg.asset(kinds={"gguf", "llamacpp"}, code_version="1")
def gguf_model(
    forge: ForgeSettingsResource,
    llama_cpp_toolchain: LlamaCppToolchainResource,
    lora_adapter: TrainedAdapter,
    adapter_evaluation: Evaluation,
) -> dg.MaterializeResult:
    """The adapter merged into its full-precision base, converted by llama.cpp and quantized (Q4_K_M by
    default), with an Ollama Modelfile; also the unmerged base GGUF the server hot-swaps adapters on."""
    settings = forge.get()
    info = publish.adapter_info(lora_adapter)
    result = steps.merged_gguf(settings, info, llama_cpp_toolchain.get(settings.export))
    stats = result["stats"]
    result = {**result, "is_demo_model": info.is_demo_model}
    return dg.MaterializeResult(
        value=GgufModel.model_validate(result),
        metadata={
            "pre_tokenizer": str(result["pre_tokenizer"]),
            "pre_tokenizer_fallback": result["declared_gpt2_pre_tokenizer"],
            "merged_gguf": dg.MetadataValue.path(result["merged_gguf"]),
            "base_gguf": dg.MetadataValue.path(result["base_gguf"]),
            "quant_type": result["quant_type"],
            "merged_size_bytes": stats["merged"]["size_bytes"],
            "merged_bits_per_weight": stats["merged"]["bits_per_weight"],
            "n_params": stats["merged"]["n_params"],
            "seconds_by_stage": dg.MetadataValue.json(result["timings"]),
            "sizes": dg.MetadataValue.md(_timings_md(result["timings"], stats)),
        },
    )


@dg.asset(kinds={"gguf", "llamacpp"}, code_version="1")
def gguf_adapter(
    forge: ForgeSettingsResource,
    llama_cpp_toolchain: LlamaCppToolchainResource,
    lora_adapter: TrainedAdapter,
    adapter_evaluation: Evaluation,
) -> dg.MaterializeResult:
    """The LoRA adapter alone as a GGUF adapter, applied at serve time to the unchanged base GGUF."""
    settings = forge.get()
    info = publish.adapter_info(lora_adapter)
    result, base = steps.adapter_gguf(settings, info, llama_cpp_toolchain.get(settings.export))
    return dg.MaterializeResult(
        value=GgufAdapter.model_validate(result),
        metadata={
            "adapter_gguf": dg.MetadataValue.path(result["adapter_gguf"]),
            "adapter_size_bytes": result["stats"]["adapter"]["size_bytes"],
            "adapter_params": result["stats"]["adapter"]["n_params"],
            "seconds_by_stage": dg.MetadataValue.json({**result["timings"], **base["timings"]}),
        },
    )
