"""A blocking check's verdict on one materialization, kept where a later run can read it through Dagster's public
API: a runless AssetObservation of the checked asset naming the check, the verdict and the storage id of the
materialization it judged.

Why: Dagster skips what is downstream of a failed blocking check only within the run; a later run that selects
only the downstream assets would read the failing table. The guard (`require_passed_check`) needs the check's
result for the asset's latest materialization, whatever the run's selection, and Dagster 1.13 has no public
instance method that reads asset check results back (`get_latest_asset_check_evaluation_record` is not public);
`report_runless_asset_event` and `fetch_observations` are. The check's own AssetCheckResult still carries its
report and metadata for the UI; the observation only repeats the verdict."""

from __future__ import annotations

from typing import NamedTuple

import dagster as dg

# The scrub's blocking check, whose verdict dataset_version requires (defs/catalog/assets.py).
SCRUB_CHECK = dg.AssetCheckKey(dg.AssetKey("scrubbed_examples"), "no_residual_pii")

CHECK = "forge/check"
PASSED = "forge/passed"
TARGET = "forge/materialization_storage_id"
CHECK_RUN = "forge/check_run_id"


def record_check_verdict(context: dg.AssetCheckExecutionContext, check: dg.AssetCheckKey, passed: bool) -> None:
    """Record `passed` as the verdict of `check` on its asset's latest materialization (the one the check read,
    as Dagster itself takes it). Nothing to record where the asset was never materialized in this instance."""
    instance = context.instance
    latest = instance.fetch_materializations(check.asset_key, limit=1).records
    if not latest:
        return
    instance.report_runless_asset_event(
        dg.AssetObservation(
            asset_key=check.asset_key,
            description=f"{check.name} {'passed' if passed else 'failed'} on the materialization of run "
            f"{latest[0].run_id}",
            metadata={
                CHECK: check.name,
                PASSED: passed,
                TARGET: latest[0].storage_id,
                CHECK_RUN: context.run.run_id,
            },
        )
    )


class Verdict(NamedTuple):
    passed: bool
    check_run_id: str | None  # the run the check ran in


def latest_verdict(
    instance: dg.DagsterInstance, check: dg.AssetCheckKey
) -> tuple[dg.EventLogRecord | None, Verdict | None]:
    """(the asset's latest materialization record, the newest verdict of `check` on exactly that materialization,
    None when the check has not run on it). (None, None) when the asset was never materialized."""
    latest = instance.fetch_materializations(check.asset_key, limit=1).records
    if not latest:
        return None, None
    target = latest[0]
    since = dg.AssetRecordsFilter(asset_key=check.asset_key, after_storage_id=target.storage_id)
    cursor = None
    while True:  # newest first, only what came after the materialization: ends at the first verdict on it
        page = instance.fetch_observations(since, limit=100, cursor=cursor)
        for record in page.records:
            observation = record.asset_observation
            metadata = observation.metadata if observation is not None else {}
            named, judged = metadata.get(CHECK), metadata.get(TARGET)
            if named is None or judged is None or named.value != check.name or judged.value != target.storage_id:
                continue
            passed, run = metadata.get(PASSED), metadata.get(CHECK_RUN)
            return target, Verdict(bool(passed.value) if passed else False, str(run.value) if run else None)
        if not page.has_more:
            return target, None
        cursor = page.cursor
