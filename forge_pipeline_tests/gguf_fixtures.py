"""Real GGUF files for the serving tests: a tiny base model and two random LoRA adapters, plus a manifest.

Built with the export stage's own builders and llama.cpp converters, so the server is tested on exactly
the kind of files the pipeline produces.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from forge_pipeline.export.llama_cpp import ConversionResult


@dataclass(frozen=True)
class ServeModels:
    base_gguf: Path
    adapters: tuple[Path, Path]
    # What they were made from (build_serve_models fills these; tests that copy the GGUFs leave them out): the
    # tiny HF base, the two HF adapters, and the converter's result for the base.
    base_hf: Path | None = None
    adapters_hf: tuple[Path, Path] | None = None
    base_conversion: ConversionResult | None = None


def build_serve_models(work_dir: Path) -> ServeModels:
    from forge_pipeline.export.llama_cpp import LlamaCppToolchain
    from forge_pipeline_tests.model_fixtures import build_random_lora_adapter, build_tiny_llama_for_tests

    work_dir = Path(work_dir)
    base_dir = build_tiny_llama_for_tests(work_dir / "base_hf")
    toolchain = LlamaCppToolchain()
    conversion = toolchain.convert_model(base_dir, work_dir / "base-f16.gguf")
    adapters, adapter_dirs = [], []
    for seed in (1, 2):
        adapter_dirs.append(build_random_lora_adapter(base_dir, work_dir / f"adapter{seed}_hf", seed=seed))
        adapters.append(toolchain.convert_adapter(adapter_dirs[-1], base_dir, work_dir / f"adapter{seed}.gguf").path)
    return ServeModels(
        conversion.path,
        (adapters[0], adapters[1]),
        base_hf=base_dir,
        adapters_hf=(adapter_dirs[0], adapter_dirs[1]),
        base_conversion=conversion,
    )


def build_stopper_model(work_dir: Path, template_family: str) -> dict:
    """A tiny model of one template family that always answers its end-of-turn token (HF folder), converted to
    an f16 GGUF with the export stage's converter."""
    from forge_pipeline.export.llama_cpp import LlamaCppToolchain
    from forge_pipeline_tests.model_fixtures import build_tiny_llama_for_tests

    hf = build_tiny_llama_for_tests(Path(work_dir) / "hf", eager_stop=True, template_family=template_family)
    converted = LlamaCppToolchain().convert_model(hf, Path(work_dir) / "model-f16.gguf")
    return {"hf": hf, "gguf": converted.path, "converted": converted}


def write_manifest(manifest_path: Path, models: ServeModels, current: str = "v0001") -> dict:
    """A manifest with v0001 (adapter 1) and v0002 (adapter 2) on the same base, `current` promoted."""
    from forge_pipeline.atomic import write_json_atomic
    from forge_pipeline.export.manifest import describe_file, empty_manifest

    manifest = empty_manifest()
    for index, version in enumerate(("v0001", "v0002")):
        manifest["versions"][version] = {
            "version": version,
            "created_at": "2026-01-01T00:00:00Z",
            "promoted": version == current,
            "dataset_version": "test",
            "mlflow_run_id": None,
            "base_model": {"name": "tiny-test-llama", "is_demo_model": True},
            "files": {
                "base_gguf": describe_file(models.base_gguf, manifest_path),
                "adapter_gguf": describe_file(models.adapters[index], manifest_path),
                "merged_gguf": None,
            },
        }
    manifest["current"] = current
    manifest["history"] = [current]
    write_json_atomic(manifest_path, manifest)
    return manifest
