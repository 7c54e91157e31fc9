import dagster as dg

from forge_pipeline.defs.train.assets import base_model, lora_adapter
from forge_pipeline.defs.train.checks import train_checks
from forge_pipeline.defs.train.preference import preference_adapter
from forge_pipeline.defs.train.resources import train_resources

defs = dg.Definitions(
    assets=[base_model, lora_adapter, preference_adapter], asset_checks=train_checks, resources=train_resources()
)
