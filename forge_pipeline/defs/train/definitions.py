import dagster as dg

from forge_pipeline.defs.train.assets import base_model, lora_adapter
from forge_pipeline.defs.train.preference import preference_adapter
from forge_pipeline.defs.train.resources import train_resources

defs = dg.Definitions(assets=[base_model, lora_adapter, preference_adapter], resources=train_resources())
