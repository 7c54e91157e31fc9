"""Flashcards (obsidian-spaced-repetition) as question/answer pairs: the person already wrote the question.

In a note carrying one of the plugin's flashcard tags (vault_config.FlashcardSyntax):
- `Question::Answer` and `Question:::Answer` on one line (the reversed form is still a question first);
- a multi-line card: the question's lines, a line holding only `?` (or `??`), then the answer's lines down to
  the next blank line.
Lines in fenced code are never cards. A question that is a bare term ("Idempotence") is asked as "What is
Idempotence?"; one that is already a question stays as written. Cloze cards (`==hidden==`) have no separate
question and are left to the sections strategy with the rest of the note.
"""

from __future__ import annotations

import re

from forge_pipeline.ingest.vault_config import FlashcardSyntax

_FENCE = re.compile(r"^\s*(```|~~~)")
_LIST_MARKER = re.compile(r"^\s*(?:[-*+]|\d+[.)])\s+")
_TAG = re.compile(r"(?<!\S)#[A-Za-z_][\w/\-]*")


def card_question(text: str) -> str:
    question = re.sub(r"\s+", " ", _TAG.sub(" ", _LIST_MARKER.sub("", text))).strip().rstrip(":").strip()
    question = re.sub(r"(\*\*|__)(.+?)\1", r"\2", question)
    if not question or question.endswith("?"):
        return question
    return f"What is {question}?" if len(question.split()) <= 4 else f"{question}?"


def split_cards(body: str, syntax: FlashcardSyntax) -> tuple[list[tuple[str, str]], str]:
    """([(question, answer)], the body without the card lines)."""
    cards: list[tuple[str, str]] = []
    kept: list[str] = []
    paragraph: list[str] = []
    in_code = False
    multi = {syntax.multi, syntax.multi_reversed}
    singles = sorted({syntax.single_reversed, syntax.single}, key=len, reverse=True)  # ":::" before "::"

    def flush() -> None:
        separator = next((i for i, line in enumerate(paragraph) if line.strip() in multi), None)
        if separator is not None and 0 < separator < len(paragraph) - 1:
            question = card_question(" ".join(paragraph[:separator]))
            answer = "\n".join(paragraph[separator + 1 :]).strip()
            if question and answer:
                cards.append((question, answer))
                paragraph.clear()
                return
        kept.extend(paragraph)
        paragraph.clear()

    for line in body.split("\n"):
        if _FENCE.match(line):
            in_code = not in_code
        if in_code or _FENCE.match(line):
            flush()
            kept.append(line)
            continue
        sep = next((s for s in singles if s and s in line and "`" not in line), None)
        if sep:
            left, _, right = line.partition(sep)
            if left.strip() and right.strip():
                flush()
                cards.append((card_question(left), right.strip()))
                continue
        if not line.strip():
            flush()
            kept.append(line)
        else:
            paragraph.append(line)
    flush()
    return cards, re.sub(r"\n{3,}", "\n\n", "\n".join(kept)).strip()
