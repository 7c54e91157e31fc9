"""What a person notices in a model's answers, measured: loops, empty or cut replies, template debris, length.

Held-out perplexity says how well a model predicts the person's text; it does not say whether the model's own
answers are usable. A LoRA that lowers perplexity can still answer "I'm not sure. I'm not sure. I'm not sure."
These figures are computed on the side-by-side answers (eval prompts and held-out prompts, same decoding for
base and tuned) and gated beside perplexity (`quality_gate`):

- repeated sentence: a sentence of 3+ words that occurs twice in one reply (normalised: case, spacing and
  end punctuation ignored). The loop a person sees first.
- repeated n-grams: the share of a reply's word 4-grams that repeat an earlier 4-gram of the same reply
  (0 for ordinary prose, 0.5 for a sentence said three times); the mean over replies.
- empty: nothing but whitespace. cut: the reply hit the token limit instead of ending its turn (stop rate is
  1 - cut rate).
- placeholder / template text: the scrubber's `<PERSON_3>` placeholders, or chat-template tokens written out as
  text (`<|im_end|>`, `<|eot_id|>`, `[INST]`): the model learned debris from its data or template.
- length vs reference: reply words / reference words on held-out prompts (median), so "too short" or
  "rambles" shows up; reported, not gated (a person's notes vary too much in length).
"""

from __future__ import annotations

import re
from statistics import median

from forge_pipeline.export.config import QualityGateSettings

PLACEHOLDER = re.compile(r"<[A-Z][A-Z_]*_\d+>|<[A-Z][A-Z_]{2,}>")  # <PERSON_3>, <EMAIL_ADDRESS>
TEMPLATE_TOKEN = re.compile(r"<\|[A-Za-z0-9_]+\|>|\[/?INST\]|<</?SYS>>|</?s>")
SENTENCE_END = re.compile(r"(?<=[.!?])\s+|\n+")
WORD = re.compile(r"[\w']+")
NGRAM = 4
MIN_SENTENCE_WORDS = 3
# The figures the gate compares (higher is worse for each); length is reported only.
GATED = ("repeated_sentence_rate", "repeated_ngram_rate", "empty_rate", "cut_rate", "placeholder_rate")


def _words(text: str) -> list[str]:
    return WORD.findall(text.lower())


def repeated_sentences(text: str) -> list[str]:
    """Sentences (3+ words) that occur more than once in `text`, normalised, in first-seen order."""
    seen: set[tuple[str, ...]] = set()
    repeated: dict[tuple[str, ...], None] = {}
    for sentence in SENTENCE_END.split(text):
        words = tuple(_words(sentence))
        if len(words) < MIN_SENTENCE_WORDS:
            continue
        if words in seen:
            repeated[words] = None
        seen.add(words)
    return [" ".join(words) for words in repeated]


def repeated_ngram_ratio(text: str, n: int = NGRAM) -> float:
    """Share of the word n-grams of `text` that repeat an earlier one (0.0 when there are none)."""
    words = _words(text)
    grams = [tuple(words[i : i + n]) for i in range(len(words) - n + 1)]
    return (len(grams) - len(set(grams))) / len(grams) if grams else 0.0


def reply_quality(text: str, stopped: bool, reference: str | None = None) -> dict:
    """The figures of one reply (`stopped`: it ended its turn before the token limit)."""
    debris = PLACEHOLDER.findall(text) + TEMPLATE_TOKEN.findall(text)
    reference_words = len(_words(reference)) if reference else 0
    return {
        "repeated_sentences": repeated_sentences(text),
        "repeated_ngram_ratio": round(repeated_ngram_ratio(text), 4),
        "empty": not text.strip(),
        "cut": not stopped,
        "placeholders": debris,
        "length_ratio": round(len(_words(text)) / reference_words, 3) if reference_words else None,
    }


def summarize(qualities: list[dict]) -> dict:
    """Rates over replies (each in [0, 1], lower is better) and the median length ratio."""
    n = max(len(qualities), 1)
    ratios = [q["length_ratio"] for q in qualities if q["length_ratio"] is not None]
    return {
        "replies": len(qualities),
        "repeated_sentence_rate": sum(bool(q["repeated_sentences"]) for q in qualities) / n,
        "repeated_ngram_rate": sum(q["repeated_ngram_ratio"] for q in qualities) / n,
        "empty_rate": sum(q["empty"] for q in qualities) / n,
        "cut_rate": sum(q["cut"] for q in qualities) / n,
        "stop_rate": 1.0 - sum(q["cut"] for q in qualities) / n,
        "placeholder_rate": sum(bool(q["placeholders"]) for q in qualities) / n,
        "median_length_ratio": median(ratios) if ratios else None,
    }


def marks(quality: dict) -> str:
    """Short flags for a table cell: what is wrong with one reply, '' when nothing is."""
    flags = []
    if quality["repeated_sentences"]:
        flags.append("repeats a sentence")
    elif quality["repeated_ngram_ratio"] >= 0.2:
        flags.append("repetitive")
    if quality["empty"]:
        flags.append("empty")
    elif quality["cut"]:
        flags.append("cut")
    if quality["placeholders"]:
        flags.append("template text " + " ".join(dict.fromkeys(quality["placeholders"])))
    return ", ".join(flags)


def quality_gate(tuned: dict, baselines: dict[str, dict], settings: QualityGateSettings) -> tuple[bool, list[str]]:
    """(passes, reasons): the tuned summary must not be worse than any baseline summary (`{"base": ...,
    "v0003 (serving)": ...}`) by more than the setting's tolerance on any gated figure. A rate over n replies
    moves by 1/n per reply, so a tolerance of 0 means "not one reply more"."""
    problems = []
    for name, baseline in baselines.items():
        for figure in GATED:
            allowed = baseline[figure] + getattr(settings, figure)
            if tuned[figure] > allowed + 1e-9:
                problems.append(
                    f"{figure.replace('_', ' ')} {tuned[figure]:.3f} > {name} {baseline[figure]:.3f}"
                    f" + tolerance {getattr(settings, figure):.3f}"
                )
    return not problems, problems
