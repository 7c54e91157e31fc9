"""Retraining triggers: new interactions refresh the dataset; enough of them (or the nightly schedule)
retrain the model."""

from __future__ import annotations

import hashlib
from datetime import timedelta
from pathlib import Path

import dagster as dg

from forge_pipeline.defs.resources import ForgeSettingsResource
from forge_pipeline.feedback.plan import stored_pairs_ready as preference_pairs_ready
from forge_pipeline.serve.retrain import ScanState, changed_since, scan

# Selected by group so this stage never names other stages' assets; the lead's groups decide membership.
DATA_GROUPS = ("ingest", "prepare", "curate", "catalog")

forge_data_job = dg.define_asset_job(
    "forge_data_job",
    selection=dg.AssetSelection.groups(*DATA_GROUPS),
    description="Ingest → prepare → curate → new dataset version (no training).",
)
forge_feedback_job = dg.define_asset_job(
    "forge_feedback_job",
    selection=dg.AssetSelection.assets("preference_adapter", "preference_candidate"),
    description="DPO on the stored preference pairs, then evaluation, export and the A/B candidate.",
)
forge_retrain_job = dg.define_asset_job(
    "forge_retrain_job",
    selection=dg.AssetSelection.all(),
    description="The whole chain: data, training, evaluation, GGUF export, manifest.",
)


def already_ingested(instance: dg.DagsterInstance, dirs: list[Path]) -> ScanState:
    """The cursor of a sensor's first tick: interaction files last written before the latest `conversations`
    materialization were read by it, so their records are in the dataset already and count neither as new nor
    toward the retrain threshold. Files written since count in full; with no materialization, everything does."""
    latest = instance.get_latest_materialization_event(dg.AssetKey("conversations"))
    if latest is None:
        return ScanState()
    offsets = {}
    for directory in dirs:
        for path in sorted(Path(directory).glob("*.jsonl")):
            stat = path.stat()
            if stat.st_mtime <= latest.timestamp:
                offsets[str(path.resolve())] = stat.st_size  # the key `scan` uses
    return ScanState(offsets)


@dg.sensor(
    jobs=[forge_data_job, forge_retrain_job, forge_feedback_job],
    minimum_interval_seconds=60,
    default_status=dg.DefaultSensorStatus.STOPPED,
)
def new_interactions_sensor(context: dg.SensorEvaluationContext, forge: ForgeSettingsResource):
    """New interaction records → refresh the dataset; >= serve.retrain_threshold since the last retrain →
    run the whole chain, the serving version taught the new examples; a quiet tick with >= feedback.min_pairs stored preference pairs → DPO
    (forge_feedback_job). The cursor keeps per-file byte offsets, so each record is counted once; the first tick
    starts after the interactions the dataset already holds."""
    settings = forge.get()
    if context.cursor:
        state = ScanState.from_cursor(context.cursor)
    else:
        state = already_ingested(context.instance, settings.interaction_dirs)
    result = scan(settings.interaction_dirs, state, settings.serve.retrain_threshold)
    context.update_cursor(result.state.to_cursor())
    if not result.new_records:
        # Once a data refresh has settled, enough stored preference pairs request DPO, once per set of pairs
        # (Dagster drops a repeated run_key); with new records pending, the refresh recomputes the pairs first.
        pairs_ready = preference_pairs_ready(settings)
        if pairs_ready:
            return dg.RunRequest(
                run_key=f"feedback-{pairs_ready}",
                job_name=forge_feedback_job.name,
                tags={"forge/pairs_version": pairs_ready},
            )
        return dg.SkipReason("no new interaction records")
    tags = {"forge/new_interactions": str(result.new_records)}
    # The cursor after this tick identifies the batch of records; hashlib, as str hashes vary per process.
    key = hashlib.sha256(result.state.to_cursor().encode()).hexdigest()[:16]
    if result.retrain:
        # The serving version learns the new records (train.continue_from: current; the base while none
        # serves): minutes instead of a full run. The nightly schedule retrains from the base.
        return dg.RunRequest(
            run_key=f"retrain-{key}",
            job_name=forge_retrain_job.name,
            tags=tags,
            run_config={"ops": {"lora_adapter": {"config": {"continue_from": "current"}}}},
        )
    return dg.RunRequest(run_key=f"data-{key}", job_name=forge_data_job.name, tags=tags)


@dg.schedule(
    job=forge_retrain_job,
    cron_schedule="0 3 * * *",
    execution_timezone="UTC",
    default_status=dg.DefaultScheduleStatus.STOPPED,
)
def nightly_retrain(context: dg.ScheduleEvaluationContext, forge: ForgeSettingsResource):
    """03:00 UTC: retrain on the full chain, skipped when no vault note or interaction changed in the last
    24 h (an unchanged input would produce the same dataset version, so the run would only cost time)."""
    settings = forge.get()
    since = (context.scheduled_execution_time - timedelta(days=1)).timestamp()
    changed = changed_since([*settings.interaction_dirs, settings.vault_dir, settings.conversations_dir], since)
    if not changed:
        return dg.SkipReason("no vault or interaction file changed in the last 24 h")
    day = context.scheduled_execution_time.strftime("%Y-%m-%d")
    return dg.RunRequest(run_key=f"nightly-{day}", tags={"forge/changed_files": str(len(changed))})
