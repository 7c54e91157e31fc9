"""DPO on top of the SFT adapter with trl's DPOTrainer, tracked in MLflow like the SFT runs.

The SFT adapter is loaded trainable and trained further; trl copies it into a frozen "ref" adapter, so
the reference policy is the SFT model (not the bare base) and no second model is loaded. The result is
an adapter of the same shape as the SFT one, on the same base: it goes through the same evaluation,
GGUF export and manifest path, and the server hot-swaps it on the shared base GGUF.

Output folder (keyed by the pairs, the hyperparameters and the SFT adapter, so a re-run reuses a finished
run): run_state.json (run key, MLflow run id, status, result), adapter/ (written atomically), loss_curve.png.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path
from typing import cast

from forge_pipeline.atomic import atomic_directory, write_json_atomic
from forge_pipeline.feedback.config import FeedbackSettings

ADAPTER_FILES = ("adapter_model.safetensors", "adapter_config.json")


def preference_run_key(rows: list[dict], fb: FeedbackSettings, sft_adapter_dir: Path) -> str:
    digest = hashlib.sha256(json.dumps(rows, sort_keys=True, ensure_ascii=False).encode())
    digest.update(
        json.dumps(
            fb.model_dump(mode="json", exclude={"candidate_traffic_share", "router_seed"}), sort_keys=True
        ).encode()
    )
    for name in ADAPTER_FILES:
        path = Path(sft_adapter_dir) / name
        if path.is_file():
            digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()[:16]


def dpo_config(output_dir: Path, fb: FeedbackSettings, cuda: bool):
    from trl import DPOConfig

    from forge_pipeline.train.trainer_args import shared_trainer_args

    return DPOConfig(beta=fb.beta, logging_steps=1, save_strategy="no", **shared_trainer_args(output_dir, fb, cuda))


def train_preference_adapter(
    rows: list[dict],
    sft: dict,
    output_dir: Path,
    fb: FeedbackSettings,
    tracking_uri: str,
    experiment: str = "forge",
    progress=None,
    pairs_version: str | None = None,
) -> dict:
    """DPO-train the SFT adapter described by `sft` (a lora_adapter result) on `rows` (trl preference rows).

    Returns a dict with the lora_adapter fields (so export/publish take it unchanged) plus `kind: "dpo"`
    and `parent_mlflow_run_id`.
    """
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import mlflow
    import torch
    from datasets import Dataset
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer, PrinterCallback
    from trl import DPOTrainer

    from forge_pipeline.train.tracking import (
        git_commit,
        loss_curve_png,
        metrics_callback,
        record_finished_run,
        training_experiment,
    )

    if not rows:
        raise ValueError("train_preference_adapter: no preference pairs to train on")
    sft_adapter_dir, base_model_dir, output_dir = (
        Path(sft["adapter_dir"]),
        Path(sft["base_model_dir"]),
        Path(output_dir),
    )
    if not (sft_adapter_dir / "adapter_config.json").is_file():
        raise FileNotFoundError(f"{sft_adapter_dir}: no adapter_config.json; re-materialize lora_adapter")
    key = preference_run_key(rows, fb, sft_adapter_dir)
    state_path = output_dir / "run_state.json"
    state = json.loads(state_path.read_text()) if state_path.is_file() else {}
    if state.get("run_key") == key and state.get("status") == "finished" and (output_dir / "adapter").is_dir():
        return {**state["result"], "reused": True}

    cuda = torch.cuda.is_available()
    mlflow.set_tracking_uri(tracking_uri)
    mlflow.set_experiment(experiment_id=training_experiment(tracking_uri, experiment))
    pairs_version = pairs_version or key
    run = mlflow.start_run(
        run_name=f"dpo-{key[:8]}",
        tags={
            "stage": "dpo",
            "dataset_version": pairs_version,
            "base_model": sft.get("base_model_name") or base_model_dir.name,
            "parent_run_id": sft.get("mlflow_run_id") or "",
            "run_key": key,
            "is_demo_model": str(bool(sft.get("is_demo_model"))).lower(),
        },
    )
    finished = False
    try:
        write_json_atomic(state_path, {"run_key": key, "mlflow_run_id": run.info.run_id, "status": "running"})
        mlflow.log_params(
            {
                **fb.model_dump(mode="json", exclude={"router_seed"}),
                "pairs": len(rows),
                "sft_adapter_dir": str(sft_adapter_dir),
                "base_model_dir": str(base_model_dir),
                "parent_run_id": sft.get("mlflow_run_id") or "",
                "git_commit": git_commit() or "",
                "device": "cuda" if cuda else "cpu",
            }
        )
        tokenizer = AutoTokenizer.from_pretrained(
            sft_adapter_dir if (sft_adapter_dir / "tokenizer_config.json").is_file() else base_model_dir
        )
        if tokenizer.pad_token is None:
            tokenizer.pad_token = tokenizer.eos_token
        base = AutoModelForCausalLM.from_pretrained(base_model_dir, dtype=torch.bfloat16 if cuda else torch.float32)
        model = PeftModel.from_pretrained(base, str(sft_adapter_dir), is_trainable=True)
        callback, _ = metrics_callback(mlflow, progress, cuda)
        trainer = DPOTrainer(
            model=model,
            args=dpo_config(output_dir, fb, cuda),
            train_dataset=Dataset.from_list(rows),
            processing_class=tokenizer,
            callbacks=[callback],
        )
        trainer.remove_callback(PrinterCallback)
        started = time.perf_counter()
        train_out = trainer.train()
        wall_s = time.perf_counter() - started

        adapter_dir = output_dir / "adapter"
        with atomic_directory(adapter_dir) as staging:
            # Only the trained adapter: trl's frozen "ref" copy is training machinery, not a result.
            # trl types Trainer.model as any model; here it is the PeftModel that was trained
            cast(PeftModel, trainer.model).save_pretrained(str(staging), selected_adapters=["default"])
            tokenizer.save_pretrained(staging)
        history = trainer.state.log_history
        curve = loss_curve_png([{"step": h.get("step", 0), **h} for h in history], output_dir / "loss_curve.png")
        mlflow.log_artifacts(str(adapter_dir), artifact_path="adapter")
        mlflow.log_artifact(str(curve))
        logged = [h for h in history if "loss" in h]
        metrics = {
            "first_loss": logged[0]["loss"] if logged else None,
            "final_loss": logged[-1]["loss"] if logged else None,
            "train_loss": train_out.training_loss,
            "global_step": trainer.state.global_step,
            "final_reward_margin": logged[-1].get("rewards/margins") if logged else None,
            "final_reward_accuracy": logged[-1].get("rewards/accuracies") if logged else None,
            "wall_s": round(wall_s, 2),
            "pairs": len(rows),
        }
        result = {
            "kind": "dpo",
            "adapter_dir": str(adapter_dir),
            "base_model_dir": str(base_model_dir),
            "base_model_name": sft.get("base_model_name") or base_model_dir.name,
            "is_demo_model": bool(sft.get("is_demo_model")),
            "mlflow_run_id": run.info.run_id,
            "mlflow_experiment_id": run.info.experiment_id,
            "tracking_uri": tracking_uri,
            "dataset_version": sft.get("dataset_version"),
            "pairs_version": pairs_version,
            "parent_mlflow_run_id": sft.get("mlflow_run_id"),
            "sft_adapter_dir": str(sft_adapter_dir),
            "run_key": key,
            "loss_curve_png": str(curve),
            "metrics": metrics,
        }
        record_finished_run(output_dir, key, run.info.run_id, result)  # state_path, as SFT runs write it
        mlflow.end_run("FINISHED")
        finished = True
        return result
    finally:
        if not finished:
            mlflow.end_run("FAILED")
