import dagster as dg

from forge_pipeline.defs.serve.sensors import (
    forge_data_job,
    forge_feedback_job,
    forge_retrain_job,
    new_interactions_sensor,
    nightly_retrain,
)

defs = dg.Definitions(
    jobs=[forge_data_job, forge_retrain_job, forge_feedback_job],
    sensors=[new_interactions_sensor],
    schedules=[nightly_retrain],
)
