"""`forge demo` shows training progress (step/total, percent, ETA) read back from the run's event log, where the
training subprocess's Pipes log lines land."""

from __future__ import annotations

import dagster as dg

from forge_pipeline.cli import TrainingProgress


@dg.asset
def lora_adapter(context) -> None:
    context.log.info("loading the base model")  # not a progress line: never shown as one
    for step in (1, 2, 5, 9, 10):
        context.log.info(f"step {step}/10 ({step * 10}%) loss 2.5 68 tok/s ETA 1m{10 - step}s")


def test_demo_reads_the_newest_training_progress_line_and_prints_one_per_fifth():
    with dg.DagsterInstance.ephemeral() as instance:
        result = dg.materialize([lora_adapter], instance=instance)
        progress = TrainingProgress(instance, result.run_id)
        [(line, worth_printing)] = progress.poll()
        assert line == "lora_adapter: step 10/10 (100%) loss 2.5 68 tok/s ETA 1m0s"
        assert worth_printing
        # Nothing new: the same line stays in the bar, not printed again.
        assert progress.poll() == [(line, False)]


def test_demo_shows_no_progress_for_a_run_that_logged_none():
    with dg.DagsterInstance.ephemeral() as instance:
        assert TrainingProgress(instance, "no-such-run").poll() == []
