import dagster as dg

from forge_pipeline.defs.ingest.assets import conversations, training_examples, vault_notes
from forge_pipeline.defs.ingest.checks import conversations_schema, training_examples_schema, vault_notes_schema

defs = dg.Definitions(
    assets=[vault_notes, conversations, training_examples],
    asset_checks=[vault_notes_schema, conversations_schema, training_examples_schema],
)
