"""LoRA / QLoRA supervised fine-tuning with trl's SFTTrainer and peft, tracked in MLflow, resumable.

Layout of one run's `output_dir` (one folder per run key, so a retry finds its own checkpoints):
    run_state.json   run key, MLflow run id, status, and the result once finished
    checkpoints/     Trainer checkpoints (`checkpoint-<step>`), removed when the run finishes
    adapter/         the final peft adapter + tokenizer files (written atomically)
    loss_curve.png   training/validation loss per step

The run key hashes the dataset content, the hyperparameters and the base model: a re-run with the same
three resumes from the latest checkpoint (and the same MLflow run); anything else is a new run.

Packing and correctness: packing concatenates examples into one row. trl's padding-free packing (bfd) emits
`position_ids` that restart at 0 for each example and no attention mask. Flash-attention's varlen kernels turn
those resets into per-example boundaries (cu_seqlens); transformers >= 5 does the same for mask-based
attention (sdpa, eager, flex): with no attention mask it reads the resets (`find_packed_sequence_indices`)
and builds a block-diagonal causal mask. Either way no token attends across examples; the test
`test_train_packing.py` checks that packed logits equal each example's logits computed alone. Packing is
refused with any other attention implementation, or a transformers without that detection.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from forge_pipeline.atomic import atomic_directory, write_json_atomic
from forge_pipeline.records import read_chat_jsonl
from forge_pipeline.train.config import TrainSettings
from forge_pipeline.train.tracking import (
    NoMlflow,
    ProgressFn,
    forge_version,
    git_commit,
    hyperparameter_tags,
    log_adapter_model,
    log_dataset_input,
    loss_curve_png,
    metrics_callback,
    record_finished_run,
    run_name,
    training_experiment,
)
from forge_pipeline.train.trainer_args import shared_trainer_args

if TYPE_CHECKING:  # imported where a model is loaded: peft pulls in torch and transformers
    from peft import PeftModel

FLASH_ATTENTION = (
    "flash_attention_2",
    "flash_attention_3",
    "kernels-community/flash-attn",
    "kernels-community/flash-attn3",
    "kernels-community/vllm-flash-attn3",
)
MASKED_ATTENTION = ("sdpa", "eager", "flex_attention")  # packed via position-id detection in masking_utils


# ---------------------------------------------------------------- dataset and run identity
def dataset_content_hash(dataset_dir: Path) -> str:
    """sha256 over the split files: the identity of the data, whatever the version id says."""
    digest = hashlib.sha256()
    for name in ("train.jsonl", "validation.jsonl"):
        path = Path(dataset_dir) / name
        if path.is_file():
            digest.update(name.encode())
            digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()


def run_key(dataset_hash: str, hp: TrainSettings, base_model: str, parent_adapter: str | None = None) -> str:
    # The UI link and the tiny-model settings (already in the base model path) do not change the training, nor do
    # the teaching settings of a run from the base (so `continue_from: current` with nothing serving reuses it).
    ignored = {"tiny_model", "base_model", "mlflow_ui_url"}
    if not parent_adapter:
        ignored |= {"continue_from", "teach_repeats", "teach_replay_examples"}
    params = hp.model_dump(mode="json", exclude=ignored)
    identity = {"dataset": dataset_hash, "hp": params, "base_model": str(base_model)}
    if parent_adapter:  # a taught run: `continue_from: current` names another adapter as versions are published
        identity["parent_adapter"] = str(parent_adapter)
    payload = json.dumps(identity, sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


def read_training_messages(path: Path) -> list[dict]:
    # Only the messages, and only role/content in each turn: what the chat template and the trainer read.
    return [
        {"messages": [{"role": t["role"], "content": t["content"]} for t in row["messages"]]}
        for row in read_chat_jsonl(path, need_assistant=True)
    ]


def load_splits(dataset_dir: Path):
    """The train/validation splits as a `datasets.DatasetDict` with one `messages` column.

    The catalog's JSONL exports are the source of truth (they are what the content hash covers); they are
    validated here so a bad line fails with its file and line rather than deep inside the trainer.
    """
    from datasets import Dataset, DatasetDict

    dataset_dir = Path(dataset_dir)
    splits = {}
    for split in ("train", "validation"):
        path = dataset_dir / f"{split}.jsonl"
        if not path.is_file():
            if split == "validation":
                continue
            raise FileNotFoundError(f"{path}: missing; the dataset version folder must hold train.jsonl")
        rows = read_training_messages(path)
        if rows:
            splits[split] = Dataset.from_list(rows)
    if "train" not in splits:
        raise ValueError(f"{dataset_dir / 'train.jsonl'}: no examples to train on")
    return DatasetDict(splits)


def tokenize_splits(splits, tokenizer, max_length: int) -> dict:
    """Each split as `input_ids` + assistant-only `labels`, rendered with the base model's own chat template
    (`chat_tokens`, shared with the evaluation). trl takes pre-tokenized rows as they are, so no chat format
    is assumed here and templates without `{% generation %}` markers train on assistant tokens only too."""
    from datasets import Dataset

    from forge_pipeline.train.chat_tokens import tokenize_examples

    out = {}
    for name, split in splits.items():
        rows, _dropped = tokenize_examples(list(split), tokenizer, max_length)
        if not rows:
            if name == "train":
                raise ValueError(
                    f"no train example keeps an assistant token within train.max_length={max_length}; "
                    "raise train.max_length"
                )
            continue
        out[name] = Dataset.from_list(rows)
    return out


def corpus_texts(dataset_dir: Path) -> list[str]:
    """All message texts of the train split (what the demo tokenizer is trained on)."""
    return [t["content"] for row in read_training_messages(Path(dataset_dir) / "train.jsonl") for t in row["messages"]]


# ---------------------------------------------------------------- checkpoints and state
def latest_checkpoint(checkpoint_dir: Path) -> Path | None:
    """The newest complete checkpoint; the Trainer writes trainer_state.json last, so a folder without it
    was cut short by a kill and is ignored."""
    if not checkpoint_dir.is_dir():
        return None
    complete = [
        p
        for p in checkpoint_dir.glob("checkpoint-*")
        if p.name.split("-")[-1].isdigit() and _parses(p / "trainer_state.json")
    ]
    return max(complete, key=lambda p: int(p.name.split("-")[-1]), default=None)


def _parses(path: Path) -> bool:
    try:
        json.loads(path.read_text())
        return True
    except (OSError, ValueError):
        return False


def _read_state(output_dir: Path) -> dict:
    path = output_dir / "run_state.json"
    return json.loads(path.read_text()) if path.is_file() else {}


# ---------------------------------------------------------------- model
def _load_model(base_model_dir: str, hp: TrainSettings, cuda: bool):
    import torch
    from transformers import AutoModelForCausalLM, BitsAndBytesConfig

    quantize = hp.quantization == "nf4" or (hp.quantization == "auto" and cuda)
    attn = hp.attn_implementation or ("flash_attention_2" if (hp.packing and cuda and _has_flash_attn()) else "sdpa")
    if hp.packing:
        check_packing_attention(attn)
    dtype = torch.bfloat16 if cuda else torch.float32
    kwargs = {"dtype": dtype, "attn_implementation": attn}
    if quantize:
        kwargs["quantization_config"] = BitsAndBytesConfig(
            load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True, bnb_4bit_compute_dtype=dtype
        )
    if cuda:
        kwargs["device_map"] = {"": int(os.environ.get("LOCAL_RANK", 0))}
    model = AutoModelForCausalLM.from_pretrained(base_model_dir, **kwargs)
    gradient_checkpointing = cuda if hp.gradient_checkpointing is None else hp.gradient_checkpointing
    if quantize:
        from peft import prepare_model_for_kbit_training

        model = prepare_model_for_kbit_training(
            model,
            use_gradient_checkpointing=gradient_checkpointing,
            gradient_checkpointing_kwargs={"use_reentrant": False},
        )
    model.config.use_cache = False
    return model, {
        "quantization": "nf4" if quantize else "none",
        "attn_implementation": attn,
        "gradient_checkpointing": gradient_checkpointing,
        "dtype": str(dtype).replace("torch.", ""),
    }


def check_packing_attention(attn: str) -> None:
    """Refuse packing where packed examples could attend to each other."""
    if attn in FLASH_ATTENTION:
        return
    if attn in MASKED_ATTENTION:
        import transformers.masking_utils as masking

        if hasattr(masking, "find_packed_sequence_indices"):
            return
    raise ValueError(
        f"train.packing=True with attn_implementation={attn!r}: packed examples could attend to each other. "
        f"Use one of {', '.join(FLASH_ATTENTION + MASKED_ATTENTION)} (mask-based ones need transformers >= 5) "
        "or set train.packing=false."
    )


def lora_config(hp: TrainSettings):
    from peft import LoraConfig

    # Embeddings and lm_head stay frozen: llama.cpp's LoRA converter and runtime adapters cannot take them.
    bad = [m for m in hp.target_modules if m in ("lm_head", "embed_tokens")]
    if bad:
        raise ValueError(
            f"train.target_modules: {bad} cannot be LoRA targets (GGUF LoRA export supports "
            "attention/MLP projections only)"
        )
    return LoraConfig(
        r=hp.lora_r,
        lora_alpha=hp.lora_alpha,
        lora_dropout=hp.lora_dropout,
        target_modules=list(hp.target_modules),
        task_type="CAUSAL_LM",
        bias="none",
    )


def sft_config(output_dir: Path, hp: TrainSettings, cuda: bool, hardware: dict, has_eval: bool):
    from trl import SFTConfig

    optim = hp.optim or ("paged_adamw_8bit" if cuda and hardware["quantization"] == "nf4" else "adamw_torch")
    eval_kwargs: dict[str, Any] = {}
    if has_eval:
        eval_kwargs = (
            {"eval_strategy": "steps", "eval_steps": hp.eval_steps} if hp.eval_steps else {"eval_strategy": "epoch"}
        )
    packing_kwargs: dict[str, Any] = {"packing_strategy": "bfd"} if hp.packing else {}
    return SFTConfig(
        per_device_eval_batch_size=hp.per_device_train_batch_size,
        warmup_steps=hp.warmup_steps,
        lr_scheduler_type=hp.lr_scheduler_type,
        optim=optim,
        logging_steps=hp.logging_steps,
        save_strategy="steps",
        save_steps=hp.save_steps,
        save_total_limit=2,  # rotation runs after the newest checkpoint is complete: a kill never leaves none
        # Labels already keep assistant tokens only (tokenize_splits); trl uses them as they are.
        packing=hp.packing,
        padding_free=hp.packing,
        **packing_kwargs,
        pad_to_multiple_of=hp.pad_to_multiple_of,
        activation_checkpointing=hardware["gradient_checkpointing"],
        activation_checkpointing_kwargs={"use_reentrant": False} if hardware["gradient_checkpointing"] else None,
        use_liger_kernel=hp.use_liger_kernel,  # the Trainer patches the model with Liger's kernels (public flag)
        **shared_trainer_args(output_dir, hp, cuda),
        **eval_kwargs,
    )


# ---------------------------------------------------------------- the run
def train_lora(
    dataset_dir: Path,
    base_model_dir: Path,
    output_dir: Path,
    hp: TrainSettings,
    tracking_uri: str,
    experiment: str = "forge",
    progress: ProgressFn | None = None,
    dataset_version: str | None = None,
    base_model_name: str | None = None,
    is_demo_model: bool = False,
    run_tags: dict | None = None,
    parent: dict | None = None,
) -> dict:
    """Train a LoRA adapter on `dataset_dir` (train.jsonl/validation.jsonl) and return a result dict.
    `run_tags` are added to the MLflow run's tags (the Dagster run id and URL). `parent` (teach.parent_of) makes
    it a taught run: that version's adapter trained on the rows new since its dataset version (train/teach.py).

    Re-running with the same data, hyperparameters and base model resumes from the latest checkpoint in
    `output_dir` (same MLflow run); when that run already finished, its stored result is returned.
    """
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import mlflow
    import torch
    from trl import SFTTrainer

    dataset_dir, base_model_dir, output_dir = Path(dataset_dir), Path(base_model_dir), Path(output_dir)
    content_hash = dataset_content_hash(dataset_dir)
    key = run_key(content_hash, hp, str(base_model_dir), parent["adapter_dir"] if parent else None)
    state = _read_state(output_dir)
    if state.get("run_key") != key:
        # Another configuration left files here: its checkpoints must not be resumed into this run.
        shutil.rmtree(output_dir / "checkpoints", ignore_errors=True)
        state = {}
    if state.get("status") == "finished" and (output_dir / "adapter" / "adapter_config.json").is_file():
        return {**state["result"], "reused": True}

    if hp.text_mode != "off" and hp.packing:
        raise ValueError(
            f"train.text_mode={hp.text_mode!r} with train.packing=true: text documents and chat pairs are prepared "
            "apart and cannot be packed together yet; set train.packing=false or train.text_mode=off"
        )
    from forge_pipeline.train.text_mode import join_text_datasets, load_training_splits, text_metrics, trainer_datasets

    splits, texts = load_training_splits(dataset_dir, hp.text_mode)
    taught: dict | None = None
    if parent is not None:
        splits, taught = _teaching_splits(splits, parent, hp)
    cuda = torch.cuda.is_available()
    from accelerate import PartialState

    main = PartialState().is_main_process
    if main:  # under `accelerate launch` only rank 0 talks to MLflow (no races creating the experiment)
        mlflow.set_tracking_uri(tracking_uri)
        mlflow.set_experiment(experiment_id=training_experiment(tracking_uri, experiment))
    tags = {
        **hyperparameter_tags(hp),
        **{k: str(v) for k, v in (run_tags or {}).items()},
        "dataset_version": dataset_version or content_hash[:12],
        "base_model": base_model_name or base_model_dir.name,
        "forge_version": forge_version(),
        "run_key": key,
        "is_demo_model": str(is_demo_model).lower(),
        **({"continued_from": parent["version"]} if parent else {}),
    }
    run = (
        mlflow.start_run(
            run_id=state.get("mlflow_run_id"),
            run_name=None if state else run_name("sft", base_model_name or base_model_dir.name, dataset_version, hp),
            tags=None if state else tags,
        )
        if main
        else None
    )
    try:
        if run is not None:  # the main process
            write_json_atomic(
                output_dir / "run_state.json", {"run_key": key, "mlflow_run_id": run.info.run_id, "status": "running"}
            )
        model, hardware = _load_model(str(base_model_dir), hp, cuda)
        if parent is not None:
            from peft import PeftModel

            # The published adapter's weights are the start; trl trains the PeftModel it is given as it is.
            model = PeftModel.from_pretrained(model, parent["adapter_dir"], is_trainable=True)
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(base_model_dir)
        if tokenizer.pad_token is None:
            tokenizer.pad_token = tokenizer.eos_token
        resume_from = latest_checkpoint(output_dir / "checkpoints")
        if main and not state:
            params = {
                **hp.model_dump(mode="json", exclude={"tiny_model"}),
                **hardware,
                "target_modules": ",".join(hp.target_modules),
                "base_model": base_model_name or base_model_dir.name,
                "base_model_dir": str(base_model_dir),
                "dataset_version": dataset_version,
                "dataset_content_hash": content_hash,
                "git_commit": git_commit(),
                "run_key": key,
                "train_examples": len(splits["train"]) if "train" in splits else 0,
                "validation_examples": len(splits["validation"]) if "validation" in splits else 0,
                **{f"text_{split}_documents": len(data) for split, data in texts.items()},
                "device": "cuda" if cuda else "cpu",
                **({f"teach_{k}": v for k, v in taught.items()} if taught else {}),
            }
            mlflow.log_params({k: ("" if v is None else v) for k, v in params.items()})
            log_dataset_input(mlflow, splits, dataset_dir, dataset_version, content_hash)

        callback, forge_cb = metrics_callback(mlflow if main else NoMlflow(), progress, cuda)
        tokenized = tokenize_splits(splits, tokenizer, hp.max_length) if "train" in splits else {}
        train_dataset, eval_dataset = trainer_datasets(tokenized, texts)  # text documents: trl's `text` format
        trainer = SFTTrainer(
            model=model,
            args=sft_config(output_dir, hp, cuda, hardware, eval_dataset is not None),
            train_dataset=train_dataset,
            eval_dataset=eval_dataset,
            processing_class=tokenizer,
            peft_config=None if parent is not None else lora_config(hp),
            callbacks=[callback],
        )
        join_text_datasets(trainer, tokenized, texts)
        # The LoRA starts as the identity (B = 0), so before training the held-out text is scored by the base.
        text_figures = text_metrics(trainer, "text_base") if not resume_from and parent is None else {}
        from transformers import PrinterCallback

        trainer.remove_callback(PrinterCallback)  # our callback reports progress; no duplicate dict prints
        if progress and resume_from:
            progress({"event": "resume", "checkpoint": str(resume_from)})
        started = time.perf_counter()
        train_out = trainer.train(resume_from_checkpoint=str(resume_from) if resume_from else None)
        wall_s = time.perf_counter() - started
        # The final weights' validation metrics, computed once; the metrics callback has logged them at this step.
        eval_metrics = final_eval_metrics(trainer) if eval_dataset is not None else {}
        text_figures |= text_metrics(trainer, "text_eval")
        trainer.accelerator.wait_for_everyone()
        if run is None:  # not the main process: rank 0 saves and records the run
            return {}

        adapter_dir = output_dir / "adapter"
        with atomic_directory(adapter_dir) as staging:
            # trl types Trainer.model as any model; here it is the LoRA PeftModel that was trained
            cast("PeftModel", trainer.model).save_pretrained(str(staging))
            tokenizer.save_pretrained(staging)
        history = trainer.state.log_history  # restored from the checkpoint on resume: the whole curve
        curve = loss_curve_png([{"step": h.get("step", 0), **h} for h in history], output_dir / "loss_curve.png")
        mlflow.log_artifacts(str(adapter_dir), artifact_path="adapter")
        mlflow.log_artifact(str(curve))
        model_id = log_adapter_model(tracking_uri, run, adapter_dir, hyperparameter_tags(hp), "peft-lora")
        losses = [h["loss"] for h in history if "loss" in h]
        rates = [h["tokens_per_s"] for h in forge_cb.history if "tokens_per_s" in h]
        seen = [h["num_tokens"] for h in history if "num_tokens" in h]  # trl's running count of real tokens
        metrics = {
            "trained_tokens": int(seen[-1]) if seen else None,
            "first_loss": losses[0] if losses else None,
            "final_loss": losses[-1] if losses else None,
            "train_loss": train_out.training_loss,
            "eval_loss": eval_metrics.get("eval_loss"),
            "tokens_per_s": sum(rates) / len(rates) if rates else None,
            "global_step": trainer.state.global_step,
            "wall_s": round(wall_s, 2),
            **text_figures,  # text_mode: held-out text loss/perplexity of the base (before) and the tuned model
        }
        if cuda:
            metrics["peak_gpu_memory_gb"] = torch.cuda.max_memory_allocated() / 2**30
        result = {
            "adapter_dir": str(adapter_dir),
            "base_model_dir": str(base_model_dir),
            "base_model_name": base_model_name or base_model_dir.name,
            "is_demo_model": is_demo_model,
            "mlflow_run_id": run.info.run_id,
            "mlflow_experiment_id": run.info.experiment_id,
            "mlflow_model_id": model_id,
            "tracking_uri": tracking_uri,
            "dataset_version": dataset_version,
            "dataset_content_hash": content_hash,
            "run_key": key,
            "resumed_from": str(resume_from) if resume_from else None,
            # A taught run: the version continued and how many new / replayed examples it trained on.
            "continued_from": {"version": parent["version"], **taught} if parent and taught is not None else None,
            "hardware": hardware,
            "loss_curve_png": str(curve),
            "metrics": metrics,
        }
        record_finished_run(output_dir, key, run.info.run_id, result)
        mlflow.end_run("FINISHED")
        run = None
        return result
    finally:
        if run is not None:
            # An exception: mark the run failed (a kill leaves it RUNNING; both resume into the same run).
            mlflow.end_run("FAILED")


def _teaching_splits(splits, parent: dict, hp: TrainSettings):
    """The train split of a taught run (teach.teaching_rows) and its counts; validation stays as it is."""
    from datasets import Dataset

    from forge_pipeline.train.teach import TeachError, teaching_rows

    if hp.text_mode != "off":
        raise TeachError(
            f"train.continue_from with train.text_mode={hp.text_mode!r}: a taught run trains chat pairs only; set "
            "train.text_mode=off or train from the base"
        )
    parent_rows = read_training_messages(Path(parent["parent_dataset_dir"]) / "train.jsonl")
    taught = teaching_rows(list(splits["train"]), parent_rows, hp.teach_replay_examples, hp.teach_repeats, hp.seed)
    splits["train"] = Dataset.from_list(taught.pop("rows"))
    return splits, taught


def final_eval_metrics(trainer) -> dict:
    """The validation metrics of the final weights: the Trainer's own evaluation at the last step when it ran
    one (eval_strategy=epoch evaluates at the end of the last epoch), else one evaluation now. Evaluating the
    same weights twice would cost a full pass over the validation split (seconds to minutes on a CPU)."""
    last = next((h for h in reversed(trainer.state.log_history) if "eval_loss" in h), None)
    if last is not None and last.get("step") == trainer.state.global_step:
        return {k: v for k, v in last.items() if k.startswith("eval_")}
    return trainer.evaluate()


def _has_flash_attn() -> bool:
    import importlib.util

    return importlib.util.find_spec("flash_attn") is not None
