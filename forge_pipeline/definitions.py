"""The one Definitions object of the Forge code location: it only merges each stage's definitions."""

import dagster as dg

# Stage modules, not their `defs` objects: Dagster refuses a module with more than one Definitions at
# module scope, so only `defs` below may be one.
from forge_pipeline.defs.catalog import definitions as catalog_definitions
from forge_pipeline.defs.curate import definitions as curate_definitions
from forge_pipeline.defs.export import definitions as export_definitions
from forge_pipeline.defs.ingest import definitions as ingest_definitions
from forge_pipeline.defs.prepare import definitions as prepare_definitions
from forge_pipeline.defs.resources import shared_resources
from forge_pipeline.defs.serve import definitions as serve_definitions
from forge_pipeline.defs.train import definitions as train_definitions

# Runs launched from the UI, a sensor or a fine-tuning job run each step in its own process. Spawned, every
# step re-imports Dagster, Forge and the libraries its asset imports (seconds each, ~30 steps in a retrain);
# Dagster's forkserver start method forks them from one process that has imported these once. The forkserver
# only imports (torch starts no thread pool until it computes), so forking it is safe. `forge demo` runs in
# process.
PRELOADED = (
    "forge_pipeline.definitions",
    "polars",
    "torch",
    "transformers",
    "sentence_transformers",
    "presidio_analyzer",
)
STEP_EXECUTOR = dg.multiprocess_executor.configured(
    {"start_method": {"forkserver": {"preload_modules": list(PRELOADED)}}}
)


def build_definitions(data_root: str | None = None, config_file: str | None = None) -> dg.Definitions:
    """All of Forge; `data_root` overrides the settings' data root (tests use a temporary one), `config_file`
    names the settings file (`forge --config`; None: FORGE_CONFIG or ./forge.yaml)."""
    return dg.Definitions.merge(
        ingest_definitions.defs,
        prepare_definitions.defs,
        curate_definitions.defs,
        catalog_definitions.defs,
        train_definitions.defs,
        export_definitions.defs,
        serve_definitions.defs,
        dg.Definitions(resources=shared_resources(data_root, config_file), executor=STEP_EXECUTOR),
    )


defs = build_definitions()
