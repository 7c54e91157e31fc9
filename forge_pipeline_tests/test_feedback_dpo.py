"""DPO with the real trl DPOTrainer on a tiny Llama + LoRA "SFT" adapter, tracked in a real MLflow SQLite store."""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from forge_pipeline.feedback.dpo import train_preference_adapter  # noqa: E402
from forge_pipeline.settings import load_settings  # noqa: E402

PROMPTS = ["The migration plan", "Read replicas help", "Short notes, linked often", "A team lead role"]
GOOD = "needs a rollback step before we touch production."
BAD = "drained your energy this week and what went well."


def _rows():
    return [
        {
            "prompt": [{"role": "user", "content": f"{p} ({i})"}],
            "chosen": [{"role": "assistant", "content": GOOD}],
            "rejected": [{"role": "assistant", "content": BAD}],
        }
        for i, p in enumerate(PROMPTS * 2)
    ]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    from forge_pipeline_tests.model_fixtures import build_random_lora_adapter, build_tiny_llama_for_tests

    root = tmp_path_factory.mktemp("dpo")
    base = build_tiny_llama_for_tests(root / "base")
    sft_adapter = build_random_lora_adapter(base, root / "sft_adapter", r=8)
    return root, base, sft_adapter


def _margin(base_dir, adapter_dir, rows) -> float:
    """Mean log p(chosen) - log p(rejected) of the reply tokens under base + adapter."""
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(base_dir)
    model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(base_dir), str(adapter_dir)).eval()
    total = 0.0
    for row in rows:
        prompt = tokenizer.apply_chat_template(row["prompt"], add_generation_prompt=True, tokenize=False)
        scores = []
        for reply in (row["chosen"][0]["content"], row["rejected"][0]["content"]):
            prompt_ids = tokenizer(prompt)["input_ids"]
            ids = torch.tensor([tokenizer(prompt + reply)["input_ids"]])
            with torch.no_grad():
                logp = model(ids).logits.log_softmax(-1)[0, :-1].gather(1, ids[0, 1:, None])[:, 0]
            scores.append(float(logp[len(prompt_ids) - 1 :].sum()))
        total += scores[0] - scores[1]
    return total / len(rows)


@pytest.fixture(scope="module")
def dpo_run(tiny):
    root, base, sft_adapter = tiny
    settings = load_settings(
        data_root=root / "data",
        feedback={
            "max_steps": 8,
            "learning_rate": 5e-3,
            "beta": 0.1,
            "per_device_train_batch_size": 4,
            "max_length": 128,
        },
    )
    settings.paths.ensure()
    sft = {
        "adapter_dir": str(sft_adapter),
        "base_model_dir": str(base),
        "base_model_name": "tiny-test-llama",
        "is_demo_model": True,
        "mlflow_run_id": None,
        "dataset_version": "v-test",
    }
    seen = []
    result = train_preference_adapter(
        _rows(),
        sft,
        settings.paths.adapters / "dpo",
        settings.feedback,
        settings.tracking_uri,
        progress=seen.append,
        pairs_version="pairs-test",
    )
    return settings, sft, result, seen


@pytest.mark.slow
def test_dpo_changes_the_sft_adapter_toward_chosen_and_logs_to_mlflow(tiny, dpo_run):
    import mlflow
    from safetensors.torch import load_file

    root, base, sft_adapter = tiny
    settings, sft, result, seen = dpo_run
    rows = _rows()
    before = load_file(str(sft_adapter / "adapter_model.safetensors"))
    after = load_file(os.path.join(result["adapter_dir"], "adapter_model.safetensors"))
    assert set(before) == set(after), "DPO must keep the SFT adapter's shape (same export path)"
    changed = max(float((after[k] - before[k]).abs().max()) for k in before)
    assert changed > 1e-4, changed
    assert not (settings.paths.adapters / "dpo" / "adapter" / "ref").exists()  # trl's frozen copy is not saved
    margin_sft, margin_dpo = _margin(base, sft_adapter, rows), _margin(base, result["adapter_dir"], rows)
    print(
        f"max weight change {changed:.4g}; log-prob margin chosen-rejected: SFT {margin_sft:.3f} -> DPO {margin_dpo:.3f}"
    )
    assert margin_dpo > margin_sft
    assert result["metrics"]["global_step"] == 8 and [e["step"] for e in seen if "loss" in e][-1] == 8

    mlflow.set_tracking_uri(settings.tracking_uri)
    run = mlflow.get_run(result["mlflow_run_id"])
    assert run.info.status == "FINISHED" and run.data.tags["stage"] == "dpo"
    assert run.data.tags["dataset_version"] == "pairs-test" and run.data.params["pairs"] == "8"
    assert "loss" in run.data.metrics and "rewards/margins" in run.data.metrics
    artifacts = {a.path for a in mlflow.MlflowClient().list_artifacts(run.info.run_id, "adapter")}
    assert "adapter/adapter_model.safetensors" in artifacts

    # Same pairs, settings and SFT adapter: the finished run is reused, not retrained.
    again = train_preference_adapter(
        rows, sft, settings.paths.adapters / "dpo", settings.feedback, settings.tracking_uri
    )
    assert again["reused"] and again["mlflow_run_id"] == result["mlflow_run_id"]


@pytest.mark.slow
def test_dpo_adapter_goes_through_evaluation_export_and_becomes_the_ab_candidate(tiny, dpo_run):
    from forge_pipeline.catalog.handoff import DatasetVersion
    from forge_pipeline.export import gguf
    from forge_pipeline.export.handoff import Evaluation, GgufAdapter, GgufModel
    from forge_pipeline.export.llama_cpp import LlamaCppToolchain
    from forge_pipeline.export.manifest import read_manifest, verify_version
    from forge_pipeline.export.publish import adapter_info, publish
    from forge_pipeline.feedback.outputs import PreferenceAdapter
    from forge_pipeline.feedback.publish import publish_preference_candidate
    from forge_pipeline_tests.model_fixtures import write_tiny_dataset_version

    root, base, sft_adapter = tiny
    settings, sft, result, _ = dpo_run
    dataset = DatasetVersion.model_validate(write_tiny_dataset_version(root / "dataset", save_hf=False))
    toolchain = LlamaCppToolchain()
    exports = settings.paths.exports
    # The SFT version first (current), as adapter_manifest would publish it.
    base_gguf = gguf.export_base_model(base, exports, settings.export, toolchain)
    sft_gguf = gguf.export_adapter(
        sft_adapter,
        base,
        exports / "sft",
        settings.export,
        base_gguf=base_gguf["base_gguf"],
        toolchain=toolchain,
        demo=True,
    )
    publish(
        settings.paths.manifest,
        adapter_info(sft),
        Evaluation(
            base_loss=2.0,
            tuned_loss=1.0,
            relative_improvement=0.5,
            min_relative_improvement=0.0,
            promoted=True,
            reason="",
        ),
        GgufModel(merged_gguf=base_gguf["base_gguf"], quant_type="f16", **base_gguf),
        GgufAdapter.model_validate({**sft_gguf, **base_gguf}),
    )
    settings.eval.max_new_tokens = 4
    # A random tiny adapter cannot beat the base on loss; the gate itself is tested in test_export_evaluate.
    settings.eval.min_relative_improvement = -100.0
    settings.eval.quality.enabled = False  # its 4 tokens of noise: the quality gate is test_export_answer_quality's
    out = publish_preference_candidate(settings, PreferenceAdapter(**result, trained=True), dataset, toolchain)
    assert out.published and out.version == "v0002", out
    manifest = read_manifest(settings.paths.manifest)
    assert manifest["current"] == "v0001" and out.gate is not None and out.gate.startswith("promoted")
    assert manifest["candidate"] == {"version": "v0002", "traffic_share": settings.feedback.candidate_traffic_share}
    assert manifest["versions"]["v0002"]["promoted"] is False
    assert (
        manifest["versions"]["v0002"]["kind"] == "dpo"
        and manifest["versions"]["v0002"]["mlflow_run_id"] == result["mlflow_run_id"]
    )
    assert set(verify_version(manifest, "v0002", settings.paths.manifest)) == {
        "base_gguf",
        "merged_gguf",
        "adapter_gguf",
    }
    # Requested again for the same pairs (the sensor may): not exported twice.
    again = publish_preference_candidate(settings, PreferenceAdapter(**result, trained=True), dataset, toolchain)
    assert not again.published and "already version v0002" in (again.reason or "")
