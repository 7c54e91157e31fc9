"""The llama.cpp converter toolchain as a resource: one place says which converter copy the run uses."""

from __future__ import annotations

import dagster as dg

from forge_pipeline.export.config import ExportSettings
from forge_pipeline.export.llama_cpp import LlamaCppToolchain


class LlamaCppToolchainResource(dg.ConfigurableResource):
    """Converter folder override; empty means settings.export.converter_dir (default: llama_cpp.default_converter_dir)."""

    converter_dir: str | None = None

    def get(self, settings: ExportSettings) -> LlamaCppToolchain:
        return LlamaCppToolchain(self.converter_dir or settings.converter_dir, settings.converter_timeout_s)


def export_resources() -> dict:
    return {"llama_cpp_toolchain": LlamaCppToolchainResource()}


# The folder loader takes a module's Definitions object as everything the module defines: here, its resources.
defs = dg.Definitions(resources=export_resources())
