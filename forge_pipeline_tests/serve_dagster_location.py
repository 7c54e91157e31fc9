"""A small Dagster code location for the fine-tune route tests: the serve stage's real jobs over two cheap
assets in the groups they select (the full Forge chain is too slow to launch in a test)."""

import time

import dagster as dg

from forge_pipeline.defs.serve.sensors import forge_data_job, forge_retrain_job


@dg.asset(group_name="ingest")
def quick_notes() -> list[str]:
    """A stand-in for the ingest stage: returns at once."""
    return ["note"]


@dg.asset(group_name="train", deps=[quick_notes])
def slow_training() -> None:
    """A stand-in for training: long enough to be cancelled."""
    time.sleep(60)


defs = dg.Definitions(
    assets=[quick_notes, slow_training],
    jobs=[forge_data_job, forge_retrain_job],
    resources={"io_manager": dg.FilesystemIOManager()},
)
