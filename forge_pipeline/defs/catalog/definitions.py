import dagster as dg

from forge_pipeline.defs.catalog.assets import dataset_version
from forge_pipeline.defs.catalog.checks import dataset_version_has_user_and_assistant_turns, dataset_version_no_split_leakage

defs = dg.Definitions(
    assets=[dataset_version],
    asset_checks=[dataset_version_no_split_leakage, dataset_version_has_user_and_assistant_turns],
)
