import dagster as dg

from forge_pipeline.defs.catalog.assets import dataset_version
from forge_pipeline.defs.catalog.checks import (
    dataset_version_has_user_and_assistant_turns,
    dataset_version_no_split_leakage,
)
from forge_pipeline.defs.catalog.embedding_index import embedding_index, embedding_index_covers_the_dataset_version

defs = dg.Definitions(
    assets=[dataset_version, embedding_index],
    asset_checks=[
        dataset_version_no_split_leakage,
        dataset_version_has_user_and_assistant_turns,
        embedding_index_covers_the_dataset_version,
    ],
)
