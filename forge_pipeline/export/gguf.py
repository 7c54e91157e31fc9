"""Export a trained adapter as GGUF: merged+quantized model, adapter-only GGUF, base GGUF, Ollama Modelfiles.

Layout under settings.paths.exports:
    base/<base hash>/base-<quant>.gguf, base-f16.gguf   (once per base model; the server hot-swaps adapters on it)
    <key>/merged-<quant>.gguf [merged-f16.gguf] Modelfile    (<key> = MLflow run id or adapter folder name)
    <key>/adapter-f16.gguf Modelfile.adapter

Every GGUF is produced under a temporary name and renamed when complete; intermediate files (merged HF
folder, an f16 GGUF that is not kept) live in a staging folder that is removed whatever happens, so a
crash between conversion and quantization leaves nothing the manifest could point at.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import tempfile
import time
from pathlib import Path

from forge_pipeline.atomic import locked, write_text_atomic
from forge_pipeline.export.config import ExportSettings
from forge_pipeline.export.llama_cpp import (
    LlamaCppToolchain,
    gguf_metadata,
    gguf_n_params,
    gguf_stats,
    gguf_token_text,
    quantize,
)


def base_model_hash(base_dir: Path) -> str:
    """Content hash of a base model folder (weights, config, tokenizer): the cache key of its GGUF."""
    digest = hashlib.sha256()
    for path in sorted(p for p in Path(base_dir).rglob("*") if p.is_file() and not p.name.startswith(".")):
        digest.update(str(path.relative_to(base_dir)).encode())
        with open(path, "rb") as handle:
            while block := handle.read(1 << 20):
                digest.update(block)
    return digest.hexdigest()[:16]


def modelfile(from_path: str, model_gguf: Path, adapter_path: str | None = None, demo: bool = False) -> str:
    """An Ollama Modelfile that relies on the chat template stored in the GGUF (Ollama reads it from the file), so
    it is right for any base model; the stop token is the GGUF's own end-of-turn/EOS token."""
    meta = gguf_metadata(model_gguf)
    lines = []
    if demo:
        lines.append("# DEMO MODEL: a tiny random-init Llama built for Forge's demo; it does not produce useful text.")
    if "tokenizer.chat_template" not in meta:
        lines.append("# The GGUF carries no chat template: add a TEMPLATE line for chat use.")
    lines.append(f"FROM {from_path}")
    if adapter_path:
        lines.append(f"ADAPTER {adapter_path}")
    if "tokenizer.ggml.eos_token_id" in meta:
        stop = gguf_token_text(model_gguf, int(meta["tokenizer.ggml.eos_token_id"]))
        lines.append(f"PARAMETER stop {json.dumps(stop)}")
    lines += ["PARAMETER temperature 0.7", "PARAMETER num_ctx 2048"]
    return "\n".join(lines) + "\n"


def _remove_leftovers(out_dir: Path, prefix: str) -> None:
    """Temp files `.<prefix>*.partial` (and, for the merged export, staging folders) of an export that was killed.
    Call only under the lock of the export that owns `prefix`: gguf_model and gguf_adapter may run at the same
    time in the same folder, and one must never delete the other's file in progress."""
    if not out_dir.is_dir():
        return
    if prefix == "merged-":
        for leftover in out_dir.glob(".staging.*"):
            shutil.rmtree(leftover, ignore_errors=True)
    for leftover in out_dir.glob(f".{prefix}*.partial"):
        leftover.unlink(missing_ok=True)


def _staging(out_dir: Path) -> Path:
    out_dir.mkdir(parents=True, exist_ok=True)
    # Staging beside the outputs (same filesystem) keeps the final renames atomic; the dot hides it from globbing.
    return Path(tempfile.mkdtemp(prefix=".staging.", dir=out_dir))


def export_base_model(
    base_dir: Path, exports_dir: Path, settings: ExportSettings, toolchain: LlamaCppToolchain | None = None
) -> dict:
    """The unmerged base model as f16 + quantized GGUF, built once per base content hash."""
    toolchain = toolchain or LlamaCppToolchain.from_settings(settings)
    key = base_model_hash(base_dir)
    out_dir = Path(exports_dir) / "base" / key
    quantized = out_dir / f"base-{settings.quant_type.lower()}.gguf"
    f16 = out_dir / "base-f16.gguf"
    timings: dict[str, float] = {}
    with locked(out_dir / "build"):
        _remove_leftovers(out_dir, "base-")  # temp files of a build that was killed (the lock says none is running)
        cached = quantized.is_file() and f16.is_file()
        if not f16.is_file():
            timings["convert_base_s"] = round(toolchain.convert_model(base_dir, f16).seconds, 3)
        if not quantized.is_file():
            timings["quantize_base_s"] = round(quantize(f16, quantized, settings.quant_type), 3)
    n_params = gguf_n_params(f16)
    return {
        "base_hash": key,
        "base_gguf": str(quantized),
        "base_f16_gguf": str(f16),
        "cached": cached,
        "timings": timings,
        "stats": {"base": gguf_stats(quantized, n_params), "base_f16": gguf_stats(f16, n_params)},
    }


def merge_adapter(base_dir: Path, adapter_dir: Path, out_dir: Path) -> Path:
    """peft merge_and_unload into the base loaded in full precision (never a 4-bit base: merging into
    quantized weights and upcasting loses accuracy), saved with the base's tokenizer."""
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    # "auto" keeps the checkpoint's own full-precision dtype (fp32 for the demo model, bf16/fp16 for real ones).
    base = AutoModelForCausalLM.from_pretrained(base_dir, dtype="auto")
    if getattr(base, "is_loaded_in_4bit", False) or getattr(base, "is_loaded_in_8bit", False):
        raise ValueError(f"{base_dir}: base model is saved quantized; merge needs the full-precision base weights")
    merged = PeftModel.from_pretrained(base, str(adapter_dir)).merge_and_unload()
    merged.save_pretrained(out_dir)
    AutoTokenizer.from_pretrained(base_dir).save_pretrained(out_dir)
    return Path(out_dir)


def export_merged_model(
    base_dir: Path,
    adapter_dir: Path,
    out_dir: Path,
    settings: ExportSettings,
    exports_dir: Path | None = None,
    toolchain: LlamaCppToolchain | None = None,
    demo: bool = False,
) -> dict:
    """Merged model → f16 GGUF → quantized GGUF (+ Modelfile); also makes sure the base GGUF exists."""
    toolchain = toolchain or LlamaCppToolchain.from_settings(settings)
    out_dir = Path(out_dir)
    quant = settings.quant_type.lower()
    merged_gguf = out_dir / f"merged-{quant}.gguf"
    kept_f16 = out_dir / "merged-f16.gguf"
    timings: dict[str, float] = {}
    # The lock sits beside the run folder so the folder holds only exported files.
    with locked(out_dir.parent / f".{out_dir.name}.export"):
        # A killed earlier run (SIGKILL skips `finally`) can leave a staging folder, and a kill inside the
        # quantizer a `.merged-*.gguf.*.partial` temp file beside the outputs: nothing points at either.
        _remove_leftovers(out_dir, "merged-")
        stats = _merge_convert_quantize(base_dir, adapter_dir, out_dir, settings, toolchain, timings)
    base = export_base_model(base_dir, exports_dir or out_dir.parent, settings, toolchain)
    write_text_atomic(out_dir / "Modelfile", modelfile(f"./{merged_gguf.name}", merged_gguf, demo=demo))
    if not settings.keep_f16:
        stats["merged_f16"]["path"] = None
    pre_tokenizer = stats.pop("pre_tokenizer")
    return {
        "pre_tokenizer": pre_tokenizer["name"],
        "declared_gpt2_pre_tokenizer": pre_tokenizer["declared_gpt2_fallback"],
        "merged_gguf": str(merged_gguf),
        "merged_f16_gguf": str(kept_f16) if settings.keep_f16 else None,
        "base_gguf": base["base_gguf"],
        "base_f16_gguf": base["base_f16_gguf"],
        "base_hash": base["base_hash"],
        "modelfile": str(out_dir / "Modelfile"),
        "quant_type": settings.quant_type,
        "timings": {**timings, **base["timings"]},
        "stats": {**stats, **base["stats"]},
    }


def _merge_convert_quantize(
    base_dir, adapter_dir, out_dir: Path, settings: ExportSettings, toolchain: LlamaCppToolchain, timings: dict
) -> dict:
    merged_gguf = out_dir / f"merged-{settings.quant_type.lower()}.gguf"
    kept_f16 = out_dir / "merged-f16.gguf"
    staging = _staging(out_dir)
    try:
        started = time.perf_counter()
        merged_dir = merge_adapter(base_dir, adapter_dir, staging / "merged_hf")
        timings["merge_s"] = round(time.perf_counter() - started, 3)
        f16 = staging / "merged-f16.gguf"
        converted = toolchain.convert_model(merged_dir, f16)
        timings["convert_s"] = round(converted.seconds, 3)
        timings["quantize_s"] = round(quantize(f16, merged_gguf, settings.quant_type), 3)
        n_params = gguf_n_params(f16)
        if settings.keep_f16:
            # Moved out of staging only after quantization worked: a failed export leaves no f16 behind either.
            f16 = f16.replace(kept_f16)
        stats = {
            "merged": gguf_stats(merged_gguf, n_params),
            "merged_f16": gguf_stats(f16, n_params),
            "pre_tokenizer": {
                "name": converted.pre_tokenizer,
                "declared_gpt2_fallback": converted.declared_gpt2_pre_tokenizer,
            },
        }
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return stats


UNCONVERTIBLE_MODULES = ("lm_head", "embed_tokens", "wte", "embed_out")


def check_adapter_convertible(adapter_dir: Path) -> None:
    """llama.cpp's LoRA converter cannot carry trained embeddings/output layers: say so before it fails obscurely."""
    config_path = Path(adapter_dir) / "adapter_config.json"
    config = json.loads(config_path.read_text(encoding="utf-8"))
    for field in ("target_modules", "modules_to_save"):
        value = config.get(field) or []
        names = [value] if isinstance(value, str) else list(value)
        bad = [n for n in names if any(part in n for part in UNCONVERTIBLE_MODULES)]
        if bad:
            raise ValueError(
                f"{config_path}: field {field!r} includes {bad}; a GGUF adapter can only hold "
                "attention/MLP LoRA weights: train with train.target_modules limited to those"
            )


def export_adapter(
    adapter_dir: Path,
    base_dir: Path,
    out_dir: Path,
    settings: ExportSettings | None = None,
    base_gguf: Path | None = None,
    toolchain: LlamaCppToolchain | None = None,
    demo: bool = False,
) -> dict:
    """The LoRA adapter as an f16 GGUF adapter, plus a base+ADAPTER Modelfile when the base GGUF is known."""
    settings = settings or ExportSettings()
    check_adapter_convertible(adapter_dir)
    toolchain = toolchain or LlamaCppToolchain.from_settings(settings)
    out_dir = Path(out_dir)
    # Own lock (not the merged export's: both may run at once in this folder) so that a killed earlier
    # conversion's `.adapter-f16.gguf.*.partial` can be removed without racing a running one.
    with locked(out_dir.parent / f".{out_dir.name}.adapter-export"):
        _remove_leftovers(out_dir, "adapter-")
        result = toolchain.convert_adapter(adapter_dir, base_dir, out_dir / "adapter-f16.gguf", outtype="f16")
    output = {
        "adapter_gguf": str(result.path),
        "timings": {"convert_adapter_s": round(result.seconds, 3)},
        "stats": {"adapter": gguf_stats(result.path)},
    }
    if base_gguf:
        import os

        relative_base = os.path.relpath(Path(base_gguf).resolve(), out_dir.resolve())
        write_text_atomic(
            out_dir / "Modelfile.adapter", modelfile(relative_base, Path(base_gguf), f"./{result.path.name}", demo=demo)
        )
        output["modelfile"] = str(out_dir / "Modelfile.adapter")
    return output
