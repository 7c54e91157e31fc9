"""train_lora with the real trl/peft trainer on the tiny model, tracked in a real MLflow SQLite store."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from forge_pipeline.settings import load_settings
from forge_pipeline.train.base_models import resolve_base_model
from forge_pipeline.train.sft import corpus_texts, load_splits, lora_config, sft_config, tokenize_splits, train_lora
from forge_pipeline_tests.model_fixtures import write_tiny_dataset_version

HP = {
    "max_steps": 12,
    "per_device_train_batch_size": 4,
    "gradient_accumulation_steps": 1,
    "learning_rate": 5e-3,
    "save_steps": 6,
    "eval_steps": 6,
    "lora_r": 8,
    "lora_alpha": 16,
    "max_length": 128,
    "target_modules": ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
    "base_model": "tiny-demo",
    "tiny_model": {"vocab_size": 400},
}


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("train")
    version = write_tiny_dataset_version(root / "dataset", version_id="v-sft")
    settings = load_settings(data_root=root / "data", train=HP)
    settings.paths.ensure()
    base = resolve_base_model(settings, corpus_texts(version["path"]))
    seen = []
    result = train_lora(
        version["path"],
        base["path"],
        settings.paths.adapters / "run",
        settings.train,
        settings.tracking_uri,
        settings.mlflow_experiment,
        progress=seen.append,
        dataset_version="v-sft",
        base_model_name=base["name"],
        is_demo_model=True,
    )
    return settings, version, base, result, seen


@pytest.mark.slow
def test_training_reduces_loss_and_saves_adapter(trained):
    settings, version, base, result, seen = trained
    metrics = result["metrics"]
    assert metrics["global_step"] == 12
    assert metrics["final_loss"] < 0.8 * metrics["first_loss"], metrics
    assert metrics["eval_loss"] is not None and metrics["tokens_per_s"] > 0
    adapter = settings.paths.adapters / "run" / "adapter"
    config = json.loads((adapter / "adapter_config.json").read_text())
    assert set(config["target_modules"]) == set(HP["target_modules"]) and config["r"] == 8
    assert (adapter / "adapter_model.safetensors").is_file() and (adapter / "tokenizer.json").is_file()
    assert not (settings.paths.adapters / "run" / "checkpoints").exists()  # cleaned, adapter kept
    assert [e["step"] for e in seen if "loss" in e] == list(range(1, 13))  # progress on every step

    # The adapter changes the model's predictions (peft initialises B to zero, so an untrained one would not).
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(base["path"])
    ids = torch.tensor([[1, 5, 6, 7]])
    before = model(ids).logits
    tuned = PeftModel.from_pretrained(model, str(adapter))
    assert (tuned(ids).logits - before).abs().max() > 1e-3


@pytest.mark.slow
def test_mlflow_run_has_params_metrics_artifacts_and_tags(trained):
    from mlflow.tracking import MlflowClient

    settings, version, base, result, _ = trained
    client = MlflowClient(tracking_uri=settings.tracking_uri)
    run = client.get_run(result["mlflow_run_id"])
    assert run.info.status == "FINISHED"
    params = run.data.params
    assert params["learning_rate"] == "0.005" and params["lora_r"] == "8" and params["max_steps"] == "12"
    assert params["dataset_version"] == "v-sft" and params["dataset_content_hash"] == result["dataset_content_hash"]
    assert params["base_model"] == base["name"] and params["target_modules"] == ",".join(HP["target_modules"])
    assert "git_commit" in params
    assert run.data.tags["dataset_version"] == "v-sft" and run.data.tags["base_model"] == base["name"]
    assert "forge_version" in run.data.tags
    losses = client.get_metric_history(run.info.run_id, "loss")
    assert sorted(m.step for m in losses) == list(range(1, 13))
    eval_steps = [m.step for m in client.get_metric_history(run.info.run_id, "eval_loss")]
    assert set(eval_steps) >= {6, 12} and len(eval_steps) == len(set(eval_steps))  # once per step: no spike
    assert run.info.artifact_uri.startswith(settings.paths.mlflow.as_uri())  # under the data root, not ./mlruns
    assert client.get_metric_history(run.info.run_id, "learning_rate")
    assert client.get_metric_history(run.info.run_id, "tokens_per_s")
    top = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"adapter", "loss_curve.png"} <= top
    assert "adapter/adapter_model.safetensors" in {a.path for a in client.list_artifacts(run.info.run_id, "adapter")}


@pytest.mark.slow
def test_finished_run_is_reused_not_retrained(trained):
    settings, version, base, result, _ = trained
    again = train_lora(
        version["path"],
        base["path"],
        settings.paths.adapters / "run",
        settings.train,
        settings.tracking_uri,
        settings.mlflow_experiment,
        dataset_version="v-sft",
        base_model_name=base["name"],
        is_demo_model=True,
    )
    assert again["reused"] and again["mlflow_run_id"] == result["mlflow_run_id"]


@pytest.mark.slow
def test_loss_is_on_assistant_tokens_only(trained, tmp_path):
    """The collator's labels are -100 everywhere except the assistant reply and its end of turn."""
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import SFTTrainer

    settings, version, base, _, _ = trained
    tokenizer = AutoTokenizer.from_pretrained(base["path"])
    hardware = {"quantization": "none", "gradient_checkpointing": False}
    splits = load_splits(version["path"])
    trainer = SFTTrainer(
        model=AutoModelForCausalLM.from_pretrained(base["path"]),
        args=sft_config(tmp_path, settings.train, False, hardware, False),
        train_dataset=tokenize_splits(splits, tokenizer, 128)["train"],
        processing_class=tokenizer,
        peft_config=lora_config(settings.train),
    )
    example = trainer.train_dataset[0]
    labels = trainer.data_collator([example])["labels"][0].tolist()
    kept = [t for t in labels if t != -100]
    reply = splits["train"][0]["messages"][-1]["content"]
    assert tokenizer.decode(kept) == reply + "<|im_end|>\n"  # the template's whole assistant turn, end token included
    assert len(kept) < len(labels) / 2  # the system and user turns are masked out


@pytest.mark.slow
def test_a_taught_run_starts_from_the_parent_adapter_and_trains_the_new_rows_beside_a_replay(trained, tmp_path):
    """train.continue_from: the trainer is given the published adapter (not a fresh LoRA), and trains each new row
    teach_repeats times beside teach_replay_examples old ones. At a learning rate of 1e-12 the taught adapter
    keeps the parent's weights, which a fresh LoRA (B = 0) would not have."""
    from mlflow.tracking import MlflowClient
    from safetensors.torch import load_file

    settings, version, base, result, _ = trained
    folder = tmp_path / "next_version"
    folder.mkdir()
    old = (Path(version["path"]) / "train.jsonl").read_text()
    new = [
        {"messages": [{"role": "user", "content": f"New question {i}?"}, {"role": "assistant", "content": "New."}]}
        for i in range(2)
    ]
    (folder / "train.jsonl").write_text(old + "".join(json.dumps(r) + "\n" for r in new))
    (folder / "validation.jsonl").write_text((Path(version["path"]) / "validation.jsonl").read_text())
    hp = settings.train.model_copy(
        update={
            "continue_from": "v0001",
            "learning_rate": 1e-12,
            "max_steps": -1,
            "per_device_train_batch_size": 1,
            "teach_repeats": 2,
            "teach_replay_examples": 3,
        }
    )
    parent = {"version": "v0001", "adapter_dir": result["adapter_dir"], "parent_dataset_dir": version["path"]}
    taught = train_lora(
        folder,
        base["path"],
        settings.paths.adapters / "taught",
        hp,
        settings.tracking_uri,
        settings.mlflow_experiment,
        base_model_name=base["name"],
        is_demo_model=True,
        parent=parent,
    )
    assert taught["continued_from"] == {"version": "v0001", "new": 2, "replayed": 3}
    assert taught["metrics"]["global_step"] == 2 * 2 + 3  # one epoch over the taught rows, batch 1
    assert taught["run_key"] != result["run_key"]
    before = load_file(Path(result["adapter_dir"]) / "adapter_model.safetensors")
    after = load_file(Path(taught["adapter_dir"]) / "adapter_model.safetensors")
    assert before.keys() == after.keys()
    assert max((after[k] - before[k]).abs().max().item() for k in before) < 1e-6
    assert max(before[k].abs().max().item() for k in before if "lora_B" in k) > 1e-3  # the parent had learned
    params = MlflowClient(tracking_uri=settings.tracking_uri).get_run(taught["mlflow_run_id"]).data.params
    assert (params["teach_new"], params["teach_replayed"], params["train_examples"]) == ("2", "3", "7")


def test_bad_dataset_line_names_file_line_and_field(tmp_path):
    (tmp_path / "train.jsonl").write_text(
        '{"messages": [{"role": "user", "content": "hi"}, '
        '{"role": "assistant", "content": "yo"}]}\n{"messages": "oops"}\n'
    )
    with pytest.raises(ValueError, match=r"train.jsonl:2: field 'messages'"):
        load_splits(tmp_path)
    with pytest.raises(ValueError, match="packed examples could attend to each other"):
        from forge_pipeline.train.config import TrainSettings
        from forge_pipeline.train.sft import _load_model

        _load_model("unused", TrainSettings(packing=True, attn_implementation="some_other_kernel"), cuda=False)
    with pytest.raises(ValueError, match="cannot be LoRA targets"):
        from forge_pipeline.train.config import TrainSettings

        lora_config(TrainSettings(target_modules=["q_proj", "lm_head"]))
