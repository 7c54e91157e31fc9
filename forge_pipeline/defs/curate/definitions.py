import dagster as dg

from forge_pipeline.defs.curate.assets import curated_examples
from forge_pipeline.defs.curate.checks import curated_examples_respect_decisions

defs = dg.Definitions(assets=[curated_examples], asset_checks=[curated_examples_respect_decisions])
