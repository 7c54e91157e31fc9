"""train.text_mode: vault replies trained as plain text (trl's `text` format) beside or instead of their chat pairs,
with the held-out notes' text evaluated before and after training."""

from __future__ import annotations

import json

import pytest

from forge_pipeline.settings import load_settings
from forge_pipeline.train.text_mode import read_training_data

NOTES = [
    "Write the rollback step before touching production, every single time.",
    "Short linked notes beat long notes nobody reads again.",
    "Decide by writing down what you would regret most in a year.",
]


# Held-out notes: other notes in the same words (what training on the text should make more likely).
HELD_NOTES = [
    "Write the rollback step before touching production.",
    "Short linked notes beat long notes.",
    "Decide by writing down what you would regret most.",
]


def _row(source: str, i: int, held: bool = False) -> dict:
    reply = (HELD_NOTES if held else NOTES)[i % len(NOTES)]
    return {
        "example_id": f"{source}{i}",
        "source": source,
        "source_path": f"note{i}.md" if source == "vault" else "chats.jsonl",
        "conversation_id": f"c{i}" if source == "conversation" else None,
        "messages": [
            {"role": "system", "content": "You answer like the vault's author."},
            {"role": "user", "content": f"What are your thoughts on rule {i}?"},
            {"role": "assistant", "content": reply},
        ],
    }


def _version(folder, vault: int = 16, chats: int = 8, held: int = 4):
    folder.mkdir(parents=True, exist_ok=True)
    rows = [_row("vault", i, held=i < held) for i in range(vault)] + [_row("conversation", i) for i in range(chats)]
    rows.append(_row("vault", 99) | {"source_path": "copy.md"})  # a held-out note with words also in train
    splits = {"train": rows[held : -held - 1], "validation": rows[:held] + rows[-held - 1 :]}
    for name, split in splits.items():
        (folder / f"{name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in split))
    return folder


def test_text_mode_chooses_what_trains_as_chat_and_what_as_text(tmp_path):
    folder = _version(tmp_path / "v")
    chat, text = read_training_data(folder, "off")
    assert (len(chat["train"]), len(chat["validation"]), text) == (16, 9, {})
    chat, text = read_training_data(folder, "beside")
    assert len(chat["train"]) == 16 and sorted(text["train"]) == sorted(NOTES)  # each vault reply once, as written
    assert text["validation"] == HELD_NOTES  # held-out notes' text is held out too, minus words also in train
    chat, text = read_training_data(folder, "instead")
    assert len(chat["train"]) == 4 and len(chat["validation"]) == 4  # only the conversations stay chat pairs
    assert all("thoughts on rule" not in doc for doc in text["train"])  # no invented prompt in the text
    with pytest.raises(ValueError, match="train.text_mode='sometimes'"):
        read_training_data(folder, "sometimes")
    with pytest.raises(ValueError, match="text_mode"):
        load_settings(train={"text_mode": "sometimes"})


@pytest.mark.slow
def test_text_mode_trains_on_text_and_chat_and_scores_held_out_text(tmp_path):
    from forge_pipeline.train.base_models import resolve_base_model
    from forge_pipeline.train.sft import corpus_texts, train_lora

    folder = _version(tmp_path / "v")
    hp = {
        "max_steps": 12,
        "per_device_train_batch_size": 4,
        "learning_rate": 5e-3,
        "lora_r": 8,
        "lora_alpha": 16,
        "max_length": 128,
        "target_modules": ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
        "base_model": "tiny-demo",
        "tiny_model": {"vocab_size": 400},
        "text_mode": "instead",
    }
    settings = load_settings(data_root=tmp_path / "data", train=hp)
    settings.paths.ensure()
    base = resolve_base_model(settings, corpus_texts(folder))
    result = train_lora(
        folder,
        base["path"],
        settings.paths.adapters / "run",
        settings.train,
        settings.tracking_uri,
        settings.mlflow_experiment,
        base_model_name=base["name"],
        is_demo_model=True,
    )
    metrics = result["metrics"]
    assert metrics["eval_loss"] is not None  # the chat validation (conversations) is still the trainer's eval set
    assert metrics["text_base_documents"] == metrics["text_eval_documents"] == 3
    assert metrics["text_eval_loss"] < metrics["text_base_loss"]  # the notes' own text became more likely
    assert metrics["text_eval_perplexity"] < metrics["text_base_perplexity"]
    import mlflow

    run = mlflow.MlflowClient(settings.tracking_uri).get_run(result["mlflow_run_id"])
    assert run.data.params["text_mode"] == "instead" and run.data.params["text_train_documents"] == "3"
    assert "text_eval_loss" in run.data.metrics
    with pytest.raises(ValueError, match="train.packing"):
        train_lora(
            folder,
            base["path"],
            settings.paths.adapters / "packed",
            settings.train.model_copy(update={"packing": True}),
            settings.tracking_uri,
        )
