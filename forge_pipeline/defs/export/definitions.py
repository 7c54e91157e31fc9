import dagster as dg

from forge_pipeline.defs.export.assets import adapter_evaluation, adapter_manifest, gguf_adapter, gguf_model
from forge_pipeline.defs.export.checks import export_checks
from forge_pipeline.defs.export.preference import preference_candidate
from forge_pipeline.defs.export.resources import export_resources

defs = dg.Definitions(
    assets=[adapter_evaluation, gguf_model, gguf_adapter, adapter_manifest, preference_candidate],
    asset_checks=export_checks,
    resources=export_resources(),
)
