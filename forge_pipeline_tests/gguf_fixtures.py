"""Real GGUF files for the serving tests: a tiny base model and two random LoRA adapters, plus a manifest.

Built with the export stage's own builders and llama.cpp converters, so the server is tested on exactly
the kind of files the pipeline produces.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class ServeModels:
    base_gguf: Path
    adapters: tuple[Path, Path]


def build_serve_models(work_dir: Path) -> ServeModels:
    from forge_pipeline.export.llama_cpp import LlamaCppToolchain
    from forge_pipeline_tests.model_fixtures import build_random_lora_adapter, build_tiny_llama_for_tests

    work_dir = Path(work_dir)
    base_dir = build_tiny_llama_for_tests(work_dir / "base_hf")
    toolchain = LlamaCppToolchain()
    base_gguf = toolchain.convert_model(base_dir, work_dir / "base-f16.gguf").path
    adapters = []
    for seed in (1, 2):
        adapter_dir = build_random_lora_adapter(base_dir, work_dir / f"adapter{seed}_hf", seed=seed)
        adapters.append(toolchain.convert_adapter(adapter_dir, base_dir, work_dir / f"adapter{seed}.gguf").path)
    return ServeModels(base_gguf, (adapters[0], adapters[1]))


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
