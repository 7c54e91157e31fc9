"""A small Dagster code location for the fine-tune route tests: the serve stage's real jobs over two cheap
assets in the groups they select (the full Forge chain is too slow to launch in a test). The training stand-in
is keyed `lora_adapter` and takes the real asset's config class, so a job's hyperparameters reach it through
Dagster's run config exactly as they reach the real asset; it logs the config it was given."""

import json
import time

import dagster as dg

from forge_pipeline.defs.serve.sensors import forge_data_job, forge_retrain_job
from forge_pipeline.defs.train.assets import LoraAdapterConfig

CONFIG_LOG_PREFIX = "lora_adapter config: "


@dg.asset(group_name="ingest")
def quick_notes() -> list[str]:
    """A stand-in for the ingest stage: returns at once."""
    return ["note"]


@dg.asset(group_name="train", deps=[quick_notes])
def lora_adapter(context: dg.AssetExecutionContext, config: LoraAdapterConfig) -> None:
    """A stand-in for training: logs its per-run config. A run from the base then runs until the test cancels it
    (long enough for two runs to start on a loaded 2-core machine; bounded, so a failed test leaves no endless
    run behind); a taught run (`continue_from`, the playground's "Train now") ends at once, so the page can follow
    its job to the end."""
    context.log.info(CONFIG_LOG_PREFIX + json.dumps(config.model_dump(), sort_keys=True))
    if not config.continue_from:
        time.sleep(300)


defs = dg.Definitions(
    assets=[quick_notes, lora_adapter],
    jobs=[forge_data_job, forge_retrain_job],
    resources={"io_manager": dg.FilesystemIOManager()},
)
