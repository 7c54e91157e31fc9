import dagster as dg

from forge_pipeline.defs.prepare.assets import deduplicated_examples, filtered_examples, scrubbed_examples
from forge_pipeline.defs.prepare.checks import prepare_checks
from forge_pipeline.defs.prepare.preference import preference_pairs
from forge_pipeline.defs.prepare.resources import prepare_resources

defs = dg.Definitions(
    assets=[scrubbed_examples, filtered_examples, deduplicated_examples, preference_pairs],
    asset_checks=prepare_checks,
    resources=prepare_resources(),
)
