"""The one Definitions object of the Forge code location: it only merges each stage's definitions."""

import dagster as dg

from forge_pipeline.defs.catalog.definitions import defs as catalog_defs
from forge_pipeline.defs.curate.definitions import defs as curate_defs
from forge_pipeline.defs.export.definitions import defs as export_defs
from forge_pipeline.defs.ingest.definitions import defs as ingest_defs
from forge_pipeline.defs.prepare.definitions import defs as prepare_defs
from forge_pipeline.defs.resources import shared_resources
from forge_pipeline.defs.serve.definitions import defs as serve_defs
from forge_pipeline.defs.train.definitions import defs as train_defs


def build_definitions(data_root: str | None = None) -> dg.Definitions:
    """All of Forge; `data_root` overrides the settings' data root (tests use a temporary one)."""
    return dg.Definitions.merge(
        ingest_defs,
        prepare_defs,
        curate_defs,
        catalog_defs,
        train_defs,
        export_defs,
        serve_defs,
        dg.Definitions(resources=shared_resources(data_root)),
    )


defs = build_definitions()
