"""The knowledge check: does the model answer with what the person's notes say?

Questions come from the dataset version itself: each vault example's prompt ("What did I learn about saying
no?") is a question whose answer is in a note (the example's reply, in the person's words). A reply "knows"
the note when it carries the note's key terms: the reply's most distinctive words (TF-IDF over every reply in
the dataset version, spaCy's English stop words and the question's own words left out, so echoing the
question earns nothing). A question's score is the share of its key terms the answer contains; the check's
score is the mean over questions, base beside tuned.

Held-out questions (the validation split) come first, as the split allows; the rest are taken from the train
split and reported apart (`seen`): with small data a model learns a note by training on it, and whether it
then answers from it is what a person asks of "my model knows my notes". Picking is deterministic (sorted by
example id), so every run asks the same questions of the same dataset version.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from pathlib import Path

from forge_pipeline.records import read_chat_jsonl

WORD = re.compile(r"[^\W\d_][\w'-]*[^\W_]|[^\W\d_]")
KEY_TERMS = 5
MIN_TERM_LETTERS = 4


def _stop_words() -> frozenset[str]:
    from spacy.lang.en.stop_words import STOP_WORDS  # the word list only: no pipeline is loaded

    return frozenset(STOP_WORDS)


def words(text: str) -> list[str]:
    return [w.lower().removesuffix("'s") for w in WORD.findall(text)]


def _stem(word: str) -> str:
    """Plural and inflection folded coarsely, so "migrations" answers "migration" (the first 6 letters)."""
    return word[:6] if len(word) > 6 else word


def key_terms(reply: str, question: str, document_frequency: Counter, documents: int, k: int = KEY_TERMS) -> list[str]:
    """The `k` most distinctive words of `reply` (TF-IDF), none of them a stop word or a word of `question`."""
    stop = _stop_words()
    asked = {_stem(w) for w in words(question)}
    counts = Counter(w for w in words(reply) if len(w) >= MIN_TERM_LETTERS and w not in stop and _stem(w) not in asked)
    scored = {w: c * math.log((1 + documents) / (1 + document_frequency[_stem(w)])) for w, c in counts.items()}
    return [w for w, _ in sorted(scored.items(), key=lambda item: (-item[1], item[0]))[:k]]


def term_score(answer: str, terms: list[str]) -> float:
    """Share of `terms` the answer contains (word match after the same coarse stemming)."""
    if not terms:
        return 0.0
    said = {_stem(w) for w in words(answer)}
    return sum(_stem(t) in said for t in terms) / len(terms)


def _question(row: dict) -> tuple[list[dict], str] | None:
    messages = row["messages"]
    last = max((i for i, m in enumerate(messages) if m["role"] == "assistant"), default=None)
    if last is None or not any(m["role"] == "user" for m in messages[:last]):
        return None
    return messages[:last], messages[last]["content"]


def knowledge_questions(dataset_dir: Path, limit: int) -> list[dict]:
    """Up to `limit` questions from the vault examples of a dataset version: held-out ones first, then seen
    ones; each with its key terms."""
    dataset_dir = Path(dataset_dir)
    splits = {}
    for split in ("validation", "train"):
        path = dataset_dir / f"{split}.jsonl"
        splits[split] = read_chat_jsonl(path, need_assistant=True) if path.is_file() else []
    replies = [
        m["content"] for rows in splits.values() for r in rows for m in r["messages"] if m["role"] == "assistant"
    ]
    document_frequency = Counter(stem for reply in replies for stem in {_stem(w) for w in words(reply)})
    questions: list[dict] = []
    for split, held_out in (("validation", True), ("train", False)):
        vault = sorted((r for r in splits[split] if r.get("source") == "vault"), key=lambda r: r.get("example_id", ""))
        for row in vault:
            if len(questions) >= limit:
                return questions
            found = _question(row)
            if found is None:
                continue
            prompt, reply = found
            terms = key_terms(reply, prompt[-1]["content"], document_frequency, len(replies))
            if len(terms) < 2:  # a reply with nothing distinctive cannot tell knowing from guessing
                continue
            questions.append(
                {
                    "prompt_id": f"knowledge-{len(questions) + 1}",
                    "category": "knowledge",
                    "messages": prompt,
                    "key_terms": terms,
                    "held_out": held_out,
                    "source_path": row.get("source_path"),
                }
            )
    return questions


def score_knowledge(questions: list[dict], base_answers: list[str], tuned_answers: list[str]) -> dict:
    """Mean key-term score of base and tuned answers, overall, on held-out and on seen questions, and one row
    per question (for the table)."""
    rows = [
        {
            "prompt_id": q["prompt_id"],
            "question": q["messages"][-1]["content"],
            "key_terms": q["key_terms"],
            "held_out": q["held_out"],
            "base": term_score(b, q["key_terms"]),
            "tuned": term_score(t, q["key_terms"]),
        }
        for q, b, t in zip(questions, base_answers, tuned_answers)
    ]

    def mean(side: str, keep) -> float | None:
        scores = [r[side] for r in rows if keep(r)]
        return round(sum(scores) / len(scores), 4) if scores else None

    return {
        "questions": len(rows),
        "held_out_questions": sum(r["held_out"] for r in rows),
        "base_score": mean("base", lambda r: True),
        "tuned_score": mean("tuned", lambda r: True),
        "base_held_out_score": mean("base", lambda r: r["held_out"]),
        "tuned_held_out_score": mean("tuned", lambda r: r["held_out"]),
        "base_seen_score": mean("base", lambda r: not r["held_out"]),
        "tuned_seen_score": mean("tuned", lambda r: not r["held_out"]),
        "rows": rows,
    }
