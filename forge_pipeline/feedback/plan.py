"""Whether and how to run DPO, decided before launching it (Dagster-free, used by the asset)."""

from __future__ import annotations

import hashlib
import json

import polars as pl

from forge_pipeline.atomic import write_text_atomic
from forge_pipeline.feedback.dpo import preference_run_key
from forge_pipeline.feedback.pairs import dpo_rows
from forge_pipeline.train.outputs import TrainedAdapter


def pairs_version(pairs: pl.DataFrame) -> str:
    """Identity of a pairs table: the sorted pair ids (content hashes after scrubbing)."""
    ids = sorted(pairs["pair_id"].to_list()) if pairs.height else []
    return "pairs-" + hashlib.sha256("\n".join(ids).encode()).hexdigest()[:12]


def plan_preference_training(settings, pairs: pl.DataFrame, sft: TrainedAdapter) -> tuple[dict | None, str]:
    """(Pipes extras, reason): extras is None when there are too few pairs or no SFT adapter to start from."""
    fb = settings.feedback
    if pairs.height < fb.min_pairs:
        return None, (
            f"{pairs.height} preference pair(s), fewer than feedback.min_pairs={fb.min_pairs}: "
            "DPO skipped until more ratings, corrections or choices arrive"
        )
    adapter_dir = sft.adapter_dir
    if not (adapter_dir / "adapter_config.json").is_file():
        return None, f"lora_adapter.adapter_dir={adapter_dir} holds no adapter: DPO needs the SFT adapter first"
    rows = dpo_rows(pairs)
    key = preference_run_key(rows, fb, adapter_dir)
    output_dir = settings.paths.adapters / f"dpo-{key}"
    rows_path = output_dir / "pairs.jsonl"
    write_text_atomic(rows_path, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    return {
        "rows_path": str(rows_path),
        "sft": sft.model_dump(mode="json"),
        "output_dir": str(output_dir),
        "feedback": fb.model_dump(mode="json"),
        "tracking_uri": settings.tracking_uri,
        "experiment": settings.mlflow_experiment,
        "pairs_version": pairs_version(pairs),
    }, f"{len(rows)} pairs"


def stored_pairs_ready(settings) -> str | None:
    """The pairs version of the stored preference_pairs table when it holds >= feedback.min_pairs pairs
    (what the sensor keys a DPO run on, so each set of pairs is trained once), else None."""
    path = settings.paths.tables / "preference_pairs.parquet"
    if not path.is_file():
        return None
    pairs = pl.read_parquet(path, columns=["pair_id"])
    return pairs_version(pairs) if pairs.height >= settings.feedback.min_pairs else None
