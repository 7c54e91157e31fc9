"""Text-completion mode (`train.text_mode`): the notes trained on as plain text, with no invented prompt.

A vault example's reply is the person's own text (a note's section, a journal entry); its prompt is Forge's
guess at a question. Where the guess is poor, or to teach the model the person's writing itself, the replies can
be trained as language modelling (every token of the text, as continued pre-training does):

- `off` (default): chat pairs only.
- `beside`: vault examples train as chat pairs and, their replies, as plain text too.
- `instead`: vault examples train as plain text only; conversations stay chat pairs.

The split is the catalog's: held-out notes' text is held out as text too (the split groups by note), so the
text evaluation (`text_loss` of the base before training and of the tuned model after, and its perplexity) is on
notes the model never saw. Which strategy made a vault example is not kept with it, so the choice is per source
(vault vs conversations), not per extraction strategy.

trl does the text side itself: the text documents reach SFTTrainer as a dataset with a `text` field (language
modelling: trl tokenizes, appends EOS, trains on every token). The chat pairs stay pre-tokenized with
assistant-only labels (chat_tokens), so the two are joined after trl has prepared the text (`join_text_datasets`).
"""

from __future__ import annotations

import math
from pathlib import Path

from forge_pipeline.records import read_chat_jsonl

TEXT_MODES = ("off", "beside", "instead")
TEXT_SOURCES = ("vault",)  # sources whose replies are the person's own text (not a model's or a chat partner's)


def _reply(messages: list[dict]) -> str:
    return next((m["content"] for m in reversed(messages) if m["role"] == "assistant"), "")


def read_training_data(dataset_dir: Path, text_mode: str) -> tuple[dict[str, list[dict]], dict[str, list[str]]]:
    """(chat rows per split, text documents per split) of a catalog version for `text_mode`. Chat rows are
    `{"messages": [...]}` (role and content only); text documents are the replies of TEXT_SOURCES examples,
    each once (and a held-out one only when it is not also in train)."""
    if text_mode not in TEXT_MODES:
        raise ValueError(f"train.text_mode={text_mode!r}: expected one of {', '.join(TEXT_MODES)}")
    chat: dict[str, list[dict]] = {}
    text: dict[str, list[str]] = {}
    for split in ("train", "validation"):
        path = Path(dataset_dir) / f"{split}.jsonl"
        if not path.is_file():
            if split == "train":
                raise FileNotFoundError(f"{path}: missing; the dataset version folder must hold train.jsonl")
            continue
        rows = read_chat_jsonl(path, need_assistant=True)
        own = [row for row in rows if row.get("source") in TEXT_SOURCES]
        keep = [row for row in rows if text_mode != "instead" or row.get("source") not in TEXT_SOURCES]
        chat[split] = [
            {"messages": [{"role": t["role"], "content": t["content"]} for t in r["messages"]]} for r in keep
        ]
        if text_mode != "off":
            docs = dict.fromkeys(_reply(row["messages"]).strip() for row in own if _reply(row["messages"]).strip())
            # A text both trained on and held out (two notes with the same words) would flatter the evaluation.
            text[split] = [doc for doc in docs if split == "train" or doc not in text.get("train", ())]
    if not chat.get("train") and not text.get("train"):
        raise ValueError(f"{Path(dataset_dir) / 'train.jsonl'}: no examples to train on (train.text_mode={text_mode})")
    return chat, text


def load_training_splits(dataset_dir: Path, text_mode: str):
    """(chat splits as a `datasets.DatasetDict` of the splits that have rows, text splits as `datasets.Dataset`s
    with one `text` column: trl's language-modelling format). With `off`, the chat splits are `load_splits`'."""
    from datasets import Dataset, DatasetDict

    from forge_pipeline.train.sft import load_splits

    if text_mode == "off":
        return load_splits(dataset_dir), {}
    chat, text = read_training_data(dataset_dir, text_mode)
    chat_splits = DatasetDict({split: Dataset.from_list(rows) for split, rows in chat.items() if rows})
    return chat_splits, {split: Dataset.from_dict({"text": docs}) for split, docs in text.items() if docs}


def trainer_datasets(tokenized: dict, texts: dict) -> tuple:
    """(train_dataset, eval_dataset) for SFTTrainer: the text documents as the train set when there are any (trl
    prepares them; `join_text_datasets` adds the chat pairs after), and a dict of evaluation sets when there is
    held-out text, so trl prepares it too."""
    train = texts.get("train", tokenized.get("train"))
    if "validation" not in texts:
        return train, tokenized.get("validation")
    return train, {
        name: data
        for name, data in (("validation", tokenized.get("validation")), ("text", texts["validation"]))
        if data is not None
    }


def join_text_datasets(trainer, tokenized: dict, texts: dict) -> None:
    """After SFTTrainer has prepared the text datasets (tokenized, EOS added, labels on every token, truncated to
    max_length): train on them and on the pre-tokenized chat pairs together, keep the chat validation as the
    trainer's evaluation set (so eval_loss keeps its meaning: assistant tokens of held-out chats) and the text
    validation set apart as `trainer.eval_dataset_text`, for `text_metrics`."""
    from datasets import concatenate_datasets

    trainer.eval_dataset_text = None
    if isinstance(trainer.eval_dataset, dict):
        prepared = trainer.eval_dataset
        trainer.eval_dataset_text = prepared.get("text")
        trainer.eval_dataset = prepared.get("validation", trainer.eval_dataset_text)
    if "train" in texts and "train" in tokenized:
        text_train = trainer.train_dataset.select_columns(["input_ids", "labels"])
        chat = tokenized["train"].select_columns(["input_ids", "labels"]).cast(text_train.features)
        trainer.train_dataset = concatenate_datasets([text_train, chat])


def text_metrics(trainer, prefix: str) -> dict:
    """Loss and perplexity of the held-out text (`<prefix>_loss`, `<prefix>_perplexity`), or {} without one."""
    dataset = getattr(trainer, "eval_dataset_text", None)
    if dataset is None or not len(dataset):
        return {}
    loss = trainer.evaluate(dataset, metric_key_prefix=prefix)[f"{prefix}_loss"]
    return {
        f"{prefix}_loss": loss,
        f"{prefix}_perplexity": math.exp(min(loss, 50.0)),
        f"{prefix}_documents": len(dataset),
    }
