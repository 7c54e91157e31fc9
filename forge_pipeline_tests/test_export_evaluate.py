"""Base vs tuned evaluation on a real tiny model and adapter, with the side-by-side table in a real MLflow run."""

from __future__ import annotations

import json
import math
import os

import pytest

from forge_pipeline.export.config import EvalSettings
from forge_pipeline.export.evaluate import (
    EvaluationInputError,
    assistant_token_labels,
    evaluate_adapter,
    gate,
    load_eval_prompts,
    load_validation_examples,
    validation_loss,
)
from forge_pipeline_tests.model_fixtures import build_random_lora_adapter, build_tiny_llama_for_tests

os.environ.setdefault("HF_HUB_OFFLINE", "1")

VALIDATION = [
    {
        "messages": [
            {"role": "user", "content": "How should I plan the migration?"},
            {"role": "assistant", "content": "Write a rollback step before we touch production."},
        ]
    },
    {
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Reflect on the week."},
            {"role": "assistant", "content": "What went well, and what drained your energy."},
            {"role": "user", "content": "And my notes?"},
            {"role": "assistant", "content": "Short notes, linked often."},
        ]
    },
    {
        "messages": [
            {"role": "user", "content": "Read replica now or later?"},
            {"role": "assistant", "content": "Later: replication lag would confuse the migration checks."},
        ]
    },
]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("tiny_eval")
    base = build_tiny_llama_for_tests(root / "base")
    return {"base": base, "adapter": build_random_lora_adapter(base, root / "adapter"), "root": root}


def _write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_loss_counts_only_assistant_tokens(tiny):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny["base"])
    ids, labels = assistant_token_labels(tokenizer, VALIDATION[1]["messages"], max_length=512)
    kept = tokenizer.decode([t for t in labels if t != -100])
    assert kept == "What went well, and what drained your energy.<|im_end|>\nShort notes, linked often.<|im_end|>\n"
    assert len(ids) == len(labels) and "Reflect" not in kept and "Be brief" not in kept


def test_validation_loss_matches_transformers_own_loss(tiny):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny["base"])
    model = AutoModelForCausalLM.from_pretrained(tiny["base"], dtype=torch.float32)
    ours = validation_loss(model, tokenizer, VALIDATION[:1])
    ids, labels = assistant_token_labels(tokenizer, VALIDATION[0]["messages"], 512)
    with torch.no_grad():
        reference = model(input_ids=torch.tensor([ids]), labels=torch.tensor([labels])).loss.item()
    assert ours["loss"] == pytest.approx(reference, rel=1e-5)
    # Batching with padding must not change the token-weighted mean.
    batched = validation_loss(model, tokenizer, VALIDATION, batch_size=3)
    single = validation_loss(model, tokenizer, VALIDATION, batch_size=1)
    assert batched["loss"] == pytest.approx(single["loss"], rel=1e-5) and batched["tokens"] == single["tokens"]


def test_gate_requires_the_configured_margin():
    assert gate(2.0, 1.9, 0.0)[0] is True
    assert gate(2.0, 1.97, EvalSettings().min_relative_improvement)[0] is False  # 1.5% better is within the margin
    promoted, reason = gate(2.0, 1.9, 0.1)
    assert promoted is False and "1.8000" in reason and "kept but not current" in reason
    assert gate(2.0, 2.0, 0.0)[0] is False  # no improvement is not promoted


def test_bad_inputs_name_file_line_and_field(tmp_path):
    bad = tmp_path / "validation.jsonl"
    bad.write_text(json.dumps(VALIDATION[0]) + "\n" + '{"messages": [{"role": "user"}]}\n')
    with pytest.raises(EvaluationInputError, match=r"validation.jsonl:2: messages\[0\] needs 'role'.*'content'"):
        load_validation_examples(bad)
    bad.write_text('{"messages": [{"role": "user", "content": "no reply"}]}\n')
    with pytest.raises(EvaluationInputError, match="validation.jsonl:1: field 'messages' has no assistant turn"):
        load_validation_examples(bad)
    bad.write_text("{not json\n")
    with pytest.raises(EvaluationInputError, match="validation.jsonl:1: not valid JSON"):
        load_validation_examples(bad)


def test_evaluate_adapter_figures_generations_and_mlflow_artifact(tiny, tmp_path):
    import mlflow
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    prompts = _write_jsonl(
        tmp_path / "prompts.jsonl",
        [
            {"prompt_id": "decision-01", "messages": [{"role": "user", "content": "Should I take the lead role?"}]},
            {
                "prompt_id": "reflect-01",
                "messages": [
                    {"role": "user", "content": "What drained me this week?"},
                    {"role": "assistant", "content": "reference answer"},
                ],
            },
        ],
    )
    assert load_eval_prompts(prompts)[1]["messages"][-1]["role"] == "user"  # the reference reply is not a prompt
    tracking_uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = mlflow.tracking.MlflowClient(tracking_uri=tracking_uri)
    experiment = client.create_experiment("forge-test", artifact_location=str(tmp_path / "artifacts"))
    run_id = client.create_run(experiment).info.run_id

    result = evaluate_adapter(
        tiny["base"],
        tiny["adapter"],
        VALIDATION,
        prompts,
        EvalSettings(max_new_tokens=6),
        tracking_uri=tracking_uri,
        mlflow_run_id=run_id,
    )

    plain = validation_loss(
        AutoModelForCausalLM.from_pretrained(tiny["base"], dtype=torch.float32),
        AutoTokenizer.from_pretrained(tiny["base"]),
        VALIDATION,
    )
    assert result["base_loss"] == pytest.approx(plain["loss"], rel=1e-5)  # the adapter was really off for "base"
    assert result["tuned_loss"] != pytest.approx(result["base_loss"], rel=1e-4)
    assert result["tuned_perplexity"] == pytest.approx(math.exp(result["tuned_loss"]))
    margin = EvalSettings().min_relative_improvement
    assert result["promoted"] == (result["tuned_loss"] < result["base_loss"] * (1 - margin))
    # 2 eval prompts + the 3 held-out examples as prompts (their last reply is the reference, not shown to the model)
    assert result["validation_examples"] == 3 and result["prompts"] == 5 and result["heldout_prompts"] == 3
    heldout = [r for r in result["generations"] if r.get("reference")]
    assert [r["reference"] for r in heldout] == [v["messages"][-1]["content"] for v in VALIDATION]
    assert all(r["messages"][-1]["role"] == "user" for r in heldout)
    for row in result["generations"]:
        for side in ("base", "tuned"):
            assert (
                0 < row[side]["completion_tokens"] <= 6 and row[side]["seconds"] >= 0 and row[side]["prompt_tokens"] > 5
            )
    assert result["markdown"].count("\n") == 6 and "decision-01" in result["markdown"]  # header, rule, 5 rows

    assert result["mlflow_logged"] is True
    artifact = mlflow.artifacts.download_artifacts(
        run_id=run_id,
        artifact_path="evaluation/side_by_side.md",
        tracking_uri=tracking_uri,
        dst_path=str(tmp_path / "dl"),
    )
    assert open(artifact).read() == result["markdown"]
    table = json.loads(
        open(
            mlflow.artifacts.download_artifacts(
                run_id=run_id,
                artifact_path="evaluation/side_by_side.json",
                tracking_uri=tracking_uri,
                dst_path=str(tmp_path / "dl2"),
            )
        ).read()
    )
    assert len(table["data"]) == 5 and {"prompt", "reference", "base", "tuned"} <= set(table["columns"])
    metrics = client.get_run(run_id).data.metrics
    assert metrics["eval_tuned_loss"] == pytest.approx(result["tuned_loss"])


def test_the_base_side_is_computed_once_per_base_model_held_out_set_and_decoding(tiny, tmp_path):
    """A second evaluation on the same base, held-out examples, prompts and decoding reads the base model's
    figures and answers from the cache (a taught run pays only for the tuned side); other examples compute them."""
    prompts = _write_jsonl(
        tmp_path / "prompts.jsonl", [{"prompt_id": "p", "messages": [{"role": "user", "content": "Hi?"}]}]
    )
    cache = tmp_path / "cache"
    settings = EvalSettings(max_new_tokens=4)
    first = evaluate_adapter(tiny["base"], tiny["adapter"], VALIDATION, prompts, settings, cache_dir=cache)
    (stored,) = list((cache / "evaluation").glob("base-*.json"))
    assert first["base_side_cached"] is False
    again = evaluate_adapter(tiny["base"], tiny["adapter"], VALIDATION, prompts, settings, cache_dir=cache)
    assert again["base_side_cached"] is True
    same = ("base_loss", "tuned_loss", "base_quality", "tuned_quality")
    assert {k: again[k] for k in same} == {k: first[k] for k in same}
    assert [r["base"]["text"] for r in again["generations"]] == [r["base"]["text"] for r in first["generations"]]

    # What is stored is what is used: an edited base loss comes back as the base loss.
    data = json.loads(stored.read_text())
    data["figures"]["loss"] = 123.0
    stored.write_text(json.dumps(data))
    assert (
        evaluate_adapter(tiny["base"], tiny["adapter"], VALIDATION, prompts, settings, cache_dir=cache)["base_loss"]
        == 123.0
    )
    other = evaluate_adapter(tiny["base"], tiny["adapter"], VALIDATION[:2], prompts, settings, cache_dir=cache)
    assert other["base_side_cached"] is False and other["base_loss"] != 123.0
    longer = evaluate_adapter(
        tiny["base"], tiny["adapter"], VALIDATION, prompts, EvalSettings(max_new_tokens=5), cache_dir=cache
    )
    assert longer["base_side_cached"] is False
    assert len(list((cache / "evaluation").glob("base-*.json"))) == 3
