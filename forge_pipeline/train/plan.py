"""What one training run needs, decided before launching it (Dagster-free, used by the asset and the CLI)."""

from __future__ import annotations

import base64
import json
from pathlib import Path

from forge_pipeline.catalog.handoff import DatasetVersion
from forge_pipeline.train.base_models import ResolvedBaseModel
from forge_pipeline.train.config import TrainSettings
from forge_pipeline.train.sft import dataset_content_hash, run_key


def dataset_dir_of(dataset_version: DatasetVersion) -> Path:
    if not dataset_version.train_file.is_file():
        raise FileNotFoundError(
            f"dataset_version.path={dataset_version.path}: no train.jsonl there; re-materialize dataset_version"
        )
    return dataset_version.path


def teaching_parent(
    settings, hp: TrainSettings, base_model_name: str | None, dataset_version: DatasetVersion, manifest: dict
) -> tuple[dict | None, str]:
    """(the version a run with `train.continue_from` continues (teach.parent_of), why it trains from the base
    instead), checked before anything is launched: the version exists, its adapter and dataset version are there,
    and the new dataset version has examples it was not trained on (else TeachError). `current` falls back to the
    base, saying why, when no version serves or the serving one cannot be continued; a named version does not."""
    from forge_pipeline.catalog.versions import list_versions
    from forge_pipeline.train.sft import read_training_messages
    from forge_pipeline.train.teach import CURRENT, TeachError, parent_of, teaching_rows

    if not hp.continue_from:
        return None, ""
    version = manifest.get("current") if hp.continue_from == CURRENT else hp.continue_from
    if version is None:
        return None, "train.continue_from='current': no version serves yet, so this run trains from the base"
    try:
        parent = parent_of(version, manifest, list_versions(settings), base_model_name)
    except TeachError as err:
        if hp.continue_from != CURRENT:
            raise
        return None, f"{err} (so this run trains from the base)"
    # Raises TeachError when nothing is new: said here, once, instead of by a training subprocess and its retries.
    teaching_rows(
        read_training_messages(dataset_dir_of(dataset_version) / "train.jsonl"),
        read_training_messages(Path(parent["parent_dataset_dir"]) / "train.jsonl"),
        hp.teach_replay_examples,
        hp.teach_repeats,
        hp.seed,
    )
    return parent, ""


def plan_training(
    settings,
    hp: TrainSettings,
    base_model: ResolvedBaseModel,
    dataset_version: DatasetVersion,
    parent: dict | None = None,
) -> dict:
    """The Pipes extras of one run; `output_dir` is keyed by data + hyperparameters + base model (+ the adapter a
    taught run continues, `parent`), so a retry of the same run lands in the same folder and resumes from its
    checkpoints."""
    dataset_dir = dataset_dir_of(dataset_version)
    key = run_key(
        dataset_content_hash(dataset_dir), hp, str(base_model.path), parent["adapter_dir"] if parent else None
    )
    return {
        "parent": parent,
        "dataset_dir": str(dataset_dir),
        "base_model_dir": str(base_model.path),
        "output_dir": str(settings.paths.adapters / key),
        "hp": hp.model_dump(mode="json"),
        "tracking_uri": settings.tracking_uri,
        "experiment": settings.mlflow_experiment,
        "dataset_version": dataset_version.version_id,
        "base_model_name": base_model.name,
        "is_demo_model": base_model.is_demo_model,
    }


def finished_result(output_dir: Path) -> dict:
    state_path = Path(output_dir) / "run_state.json"
    state = json.loads(state_path.read_text()) if state_path.is_file() else {}
    if state.get("status") != "finished":
        raise RuntimeError(f"{state_path}: training did not finish (status {state.get('status')!r})")
    return state["result"]


def mlflow_run_url(ui_url: str, experiment_id: str | None, run_id: str | None) -> str:
    return f"{ui_url.rstrip('/')}/#/experiments/{experiment_id}/runs/{run_id}"


def dagster_run_url(ui_url: str, run_id: str) -> str:
    return f"{ui_url.rstrip('/')}/runs/{run_id}"


def png_markdown(path: str | Path, alt: str = "loss curve") -> str:
    data = base64.b64encode(Path(path).read_bytes()).decode()
    return f"![{alt}](data:image/png;base64,{data})"
