"""Answer quality beside perplexity: the figures on real replies, and the gate refusing a candidate that loops.

The looping candidate is real: the demo Llama is fine-tuned (trl, a few steps) on replies that repeat one
sentence, the way the sample data's SFT run taught SmolLM2 "I'm not sure. I'm not sure."; its held-out loss
improves (the validation split loops too), so only the answer-quality gate can refuse it.
"""

from __future__ import annotations

import json
import os

import pytest

from forge_pipeline.decoding import DecodingSettings
from forge_pipeline.export.answer_quality import (
    marks,
    quality_gate,
    repeated_ngram_ratio,
    repeated_sentences,
    reply_quality,
    summarize,
)
from forge_pipeline.export.config import EvalSettings, QualityGateSettings
from forge_pipeline.export.evaluate import decide

os.environ.setdefault("HF_HUB_OFFLINE", "1")

# Replies a promoted SmolLM2 version gave in the playground and in the demo's side-by-side table.
LOOPING = [
    "I'm not sure. I'm not sure. I'm not sure.",
    "I'm not sure yet. I'm not sure if I should keep the call. I'm not sure if I should keep it. I'm not sure if "
    "I should keep the call.",
    "- **Command Explanation**: run it once.\n- **Command Explanation**: run it once.\n- **Command Explanation**: "
    "run it once.",
]
ON_TOPIC = [
    "Feed it once or twice a day with equal weights of flour and water, and discard half before each feed.",
    "Ask what the role would take from the work you enjoy, and whether your peers would welcome the change.",
    "Lock in two years if the rent rise would hurt and you expect to stay; keep one year if plans may change.",
]


def test_figures_on_real_replies():
    assert repeated_sentences(LOOPING[0]) == ["i'm not sure"]
    assert repeated_sentences(LOOPING[1]) == ["i'm not sure if i should keep the call"]
    assert repeated_sentences(LOOPING[2]) == ["command explanation run it once"]
    assert all(repeated_sentences(text) == [] for text in ON_TOPIC)
    assert repeated_ngram_ratio(LOOPING[0]) == pytest.approx(0.5)  # 6 four-grams, 3 distinct
    assert all(repeated_ngram_ratio(text) == 0.0 for text in ON_TOPIC)
    debris = reply_quality("Ask <PERSON_3> first.<|im_end|>", stopped=True)
    assert debris["placeholders"] == ["<PERSON_3>", "<|im_end|>"] and "template text" in marks(debris)
    cut = reply_quality("Twice a day with", stopped=False, reference="Twice a day, equal flour and water.")
    assert cut["cut"] and marks(cut) == "cut" and cut["length_ratio"] == pytest.approx(4 / 7, abs=1e-3)
    assert marks(reply_quality("", stopped=True)) == "empty"
    assert marks(reply_quality(ON_TOPIC[0], stopped=True)) == ""


def test_the_gate_refuses_answers_that_loop_more_than_the_baseline():
    base = summarize([reply_quality(t, stopped=True) for t in ON_TOPIC])
    looping = summarize([reply_quality(t, stopped=True) for t in LOOPING])
    passes, problems = quality_gate(looping, {"base": base}, QualityGateSettings())
    assert not passes and problems[0].startswith("repeated sentence rate 1.000 > base 0.000")
    assert quality_gate(base, {"base": base}, QualityGateSettings()) == (True, [])
    # One looping reply among three is worse than none, with the default tolerance of 0.
    one = summarize([reply_quality(t, stopped=True) for t in [LOOPING[0], *ON_TOPIC[1:]]])
    assert quality_gate(one, {"base": base}, QualityGateSettings())[0] is False
    assert quality_gate(one, {"base": base}, QualityGateSettings(repeated_sentence_rate=0.34, repeated_ngram_rate=0.2))[
        0
    ]
    # The loss gate alone would promote; together they do not, and the reason says why.
    promoted, reason, _ = decide((True, "promoted: loss"), {"base": base, "tuned": looping}, EvalSettings())
    assert promoted is False and reason.startswith("not promoted: answers worse than base: repeated sentence rate")
    off = EvalSettings(quality=QualityGateSettings(enabled=False))
    assert decide((True, "promoted: loss"), {"base": base, "tuned": looping}, off)[0] is True


def test_a_serving_version_is_a_baseline_only_for_the_same_prompts_and_decoding():
    good = summarize([reply_quality(t, stopped=True) for t in ON_TOPIC])
    worse = summarize([reply_quality(t, stopped=True) for t in [LOOPING[0], *ON_TOPIC[1:]]])
    # The candidate ties the base (both loop once) but the serving version never looped on these prompts.
    quality = {"base": worse, "tuned": worse, "eval_prompts": worse, "signature": "s1"}
    serving = {"version": "v0003", "signature": "s1", "summary": good}
    promoted, reason, problems = decide((True, "promoted: loss"), quality, EvalSettings(), serving)
    assert promoted is False and "serving v0003" in reason and problems[0].startswith("on the eval prompts")
    other = {**serving, "signature": "another prompt file"}
    assert decide((True, "promoted: loss"), quality, EvalSettings(), other)[0] is True


LOOP_REPLY = "I'm not sure. I'm not sure. I'm not sure. I'm not sure. I'm not sure. I'm not sure."


@pytest.mark.slow
def test_a_candidate_trained_to_loop_is_refused_though_its_held_out_loss_improves(tmp_path):
    from forge_pipeline.export.evaluate import evaluate_adapter
    from forge_pipeline.settings import load_settings
    from forge_pipeline.train.base_models import resolve_base_model
    from forge_pipeline.train.sft import corpus_texts, train_lora

    questions = ["How do I feed the starter?", "Should I renew the lease?", "What did I learn in March?"]
    rows = [
        {"messages": [{"role": "user", "content": f"{q} ({i})"}, {"role": "assistant", "content": LOOP_REPLY}]}
        for i in range(8)
        for q in questions
    ]
    dataset = tmp_path / "dataset"
    dataset.mkdir()
    (dataset / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows[:-3]))
    (dataset / "validation.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows[-3:]))
    settings = load_settings(
        data_root=tmp_path / "data",
        train={
            "base_model": "tiny-demo",
            "tiny_model": {"vocab_size": 400},
            "max_steps": 16,
            "per_device_train_batch_size": 4,
            "learning_rate": 5e-3,
            "max_length": 96,
            "save_steps": 100,
        },
    )
    settings.paths.ensure()
    base = resolve_base_model(settings, corpus_texts(dataset))
    trained = train_lora(
        dataset, base["path"], settings.paths.adapters / "loop", settings.train, settings.tracking_uri, "loop"
    )
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text(
        "".join(
            json.dumps({"prompt_id": f"p{i}", "messages": [{"role": "user", "content": q}]}) + "\n"
            for i, q in enumerate(questions)
        )
    )
    result = evaluate_adapter(
        base["path"],
        trained["adapter_dir"],
        rows[-3:],
        prompts,
        EvalSettings(max_new_tokens=40, min_relative_improvement=0.0),
        max_length=96,
        # No repetition penalty: the gate must catch the loop itself, not rely on decoding to hide it.
        decoding=DecodingSettings(repeat_penalty=1.0),
    )
    assert result["loss_gate_passed"] is True  # perplexity alone would promote it
    assert result["tuned_quality"]["repeated_sentence_rate"] > result["base_quality"]["repeated_sentence_rate"]
    assert any("i'm not sure" in r["tuned"]["quality"]["repeated_sentences"] for r in result["generations"])
    assert result["promoted"] is False and "repeated sentence rate" in result["reason"]
    assert "⚠ repeats a sentence" in result["markdown"]
