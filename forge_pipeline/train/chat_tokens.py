"""Chat examples as token ids with assistant-only labels, rendered by the base model's own chat template.

One function serves training (trl receives the examples pre-tokenized) and evaluation (held-out loss), so
both score exactly the same tokens. Assistant spans are found in characters (the conversation rendered up to
the generation prompt vs through the reply), then mapped to tokens through the tokenizer's offsets: it works
for any template (ChatML, Llama 3, ...) without `{% generation %}` markers, and the reply's end-of-turn token
is part of the span, so the model learns to stop where its template says a turn ends.
"""

from __future__ import annotations

IGNORE = -100


def assistant_token_labels(tokenizer, messages: list[dict], max_length: int) -> tuple[list[int], list[int]]:
    """Token ids of the rendered chat and labels that keep only assistant replies (others are -100)."""
    text = tokenizer.apply_chat_template(messages, tokenize=False)
    spans = []
    for index, message in enumerate(messages):
        if message["role"] != "assistant":
            continue
        start = (
            len(tokenizer.apply_chat_template(messages[:index], tokenize=False, add_generation_prompt=True))
            if index
            else 0
        )
        end = len(tokenizer.apply_chat_template(messages[: index + 1], tokenize=False))
        spans.append((start, end))
    # The template writes any BOS itself; add_special_tokens=False keeps the tokenizer from adding a second one.
    encoded = tokenizer(
        text, add_special_tokens=False, return_offsets_mapping=True, truncation=True, max_length=max_length
    )
    labels = [
        token if any(start <= offset[0] < end for start, end in spans) else IGNORE
        for token, offset in zip(encoded["input_ids"], encoded["offset_mapping"])
    ]
    return list(encoded["input_ids"]), labels


def tokenize_examples(rows: list[dict], tokenizer, max_length: int) -> tuple[list[dict], int]:
    """`{"input_ids", "labels"}` per example with at least one assistant token inside max_length, and how many
    examples were dropped because truncation left them nothing to learn."""
    out, dropped = [], 0
    for row in rows:
        ids, labels = assistant_token_labels(tokenizer, row["messages"], max_length)
        if any(label != IGNORE for label in labels[1:]):
            out.append({"input_ids": ids, "labels": labels})
        else:
            dropped += 1
    return out, dropped
