"""Optional: questions written by a language model for vault sections, through any OpenAI-compatible endpoint
(Forge's own `forge serve`, llama.cpp's server, Ollama, ...), with the official `openai` SDK. Off by default
(`prepare.questions.base_url` unset): the rule-based prompts of ingest stay.

For each vault example (the reply is the person's own section) the model is asked for one question that the
section answers (temperature 0; answers cached per model, endpoint and section in the cache folder, so a re-run
asks nothing new and gives the same examples). A question replaces the rule-based prompt only when it passes
`answered_by`: one question of QUESTION_WORDS words or fewer, ending with "?", no template syntax, and at least
`min_key_term_overlap` of its key terms (words that are not stop words or question words, plurals folded)
appear in the section: a question about something the section does not mention is refused. Refused questions
leave the example as it was, and the report counts why (`QuestionReport.refused`).

Which text the endpoint sees: the example after the PII scrub (placeholders, not names), and only the vault's
sections: conversations already have the person's own question.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl

from forge_pipeline.errors import ForgeError
from forge_pipeline.prepare.config import QuestionSettings
from forge_pipeline.records import example_id_for

MAX_QUESTION_WORDS = 30
QUESTION_WORDS = {
    "what",
    "why",
    "how",
    "when",
    "where",
    "which",
    "who",
    "whom",
    "whose",
    "does",
    "did",
    "can",
    "could",
    "should",
    "would",
    "is",
    "are",
    "do",
    "explain",
    "describe",
    "main",
    "key",
    "section",
    "note",
    "author",
    "text",
    "according",
    "discussed",
    "mentioned",
    "described",
    "purpose",
    "idea",
    "ideas",
}
INSTRUCTION = (
    "You write training questions for a personal notes assistant. Read the note section and write ONE question "
    "that a person would ask and that this section answers. Name the subject exactly (keep numbers, versions "
    "and titles). Reply with the question only."
)


class QuestionEndpointError(ForgeError, RuntimeError):
    """The endpoint cannot be reached or refuses; the message names it and the setting to change."""


@dataclass
class QuestionReport:
    asked: int = 0
    cached: int = 0
    accepted: int = 0
    refused: dict[str, int] = field(default_factory=dict)
    examples: list[dict] = field(default_factory=list)  # (section start, rule prompt, generated, verdict), a few

    def refuse(self, reason: str) -> None:
        self.refused[reason] = self.refused.get(reason, 0) + 1


_WORD = re.compile(r"[^\W_]+")
_TEMPLATE = re.compile(r"<%|%>|\{\{|\}\}|<[A-Z_]+_\d+>\s*\?$|#card")


def key_terms(text: str) -> set[str]:
    """Lower-cased content words of 3+ letters (digits kept: versions and chapter numbers), plurals folded."""
    from spacy.lang.en.stop_words import STOP_WORDS  # a word list: no model is loaded

    terms = set()
    for word in _WORD.findall(text.lower()):
        if word in STOP_WORDS or word in QUESTION_WORDS or (len(word) < 3 and not word.isdigit()):
            continue
        terms.add(word[:-1] if len(word) > 4 and word.endswith("s") and not word.endswith("ss") else word)
    return terms


def clean_question(text: str) -> str:
    """The first line of the model's answer without quotes, a `Question:` label or list marker."""
    line = next((ln.strip() for ln in (text or "").splitlines() if ln.strip()), "")
    line = re.sub(r"^(?:\d+[.)]\s*|[-*]\s*|(?:question|q)\s*[:.]\s*)", "", line, flags=re.IGNORECASE)
    return line.strip().strip("\"'“”").strip()


def answered_by(question: str, section: str, min_overlap: float) -> tuple[bool, str]:
    """(accepted, reason): whether `question` is one clean question that `section` answers (module docstring)."""
    words = _WORD.findall(question)
    if not question.endswith("?") or question.count("?") > 1:
        return False, "not_one_question"
    if not 3 <= len(words) <= MAX_QUESTION_WORDS:
        return False, "length"
    if _TEMPLATE.search(question):
        return False, "template_or_placeholder"
    asked = key_terms(question)
    if not asked:
        return False, "names_nothing"
    overlap = len(asked & key_terms(section)) / len(asked)
    if overlap < min_overlap:
        return False, "not_in_section"
    return True, f"key-term overlap {overlap:.2f}"


def _client(settings: QuestionSettings):
    try:
        import openai
    except ImportError:
        raise QuestionEndpointError(
            "prepare.questions.base_url is set but the openai package is not installed: pip install openai"
        ) from None

    return openai.OpenAI(
        base_url=settings.base_url, api_key=settings.api_key, timeout=settings.timeout_s, max_retries=1
    )


def ask(client, settings: QuestionSettings, section: str) -> str:
    """One question for `section` from the endpoint (temperature 0)."""
    import openai

    try:
        result = client.chat.completions.create(
            model=settings.model,
            messages=[
                {"role": "system", "content": INSTRUCTION},
                {"role": "user", "content": section[: settings.max_section_chars]},
            ],
            temperature=0,
            max_tokens=settings.max_tokens,
        )
    except openai.APIConnectionError as err:
        raise QuestionEndpointError(
            f"prepare.questions.base_url={settings.base_url}: cannot connect ({err}); start the server "
            "(forge serve, llama.cpp, Ollama) or unset prepare.questions.base_url"
        ) from None
    except openai.APIStatusError as err:
        raise QuestionEndpointError(
            f"prepare.questions.base_url={settings.base_url}: the endpoint answered {err.status_code} "
            f"({err.message}); check prepare.questions.model={settings.model!r}"
        ) from None
    return result.choices[0].message.content or ""


def _cache_path(cache_dir: Path, settings: QuestionSettings) -> Path:
    key = hashlib.sha256(json.dumps([settings.base_url, settings.model, INSTRUCTION]).encode()).hexdigest()[:16]
    return Path(cache_dir) / "questions" / f"questions-{key}.json"


def generate_questions(
    examples: pl.DataFrame, settings: QuestionSettings, cache_dir: Path | None = None, client=None
) -> tuple[pl.DataFrame, QuestionReport]:
    """`examples` with the user turn of each vault example replaced by the model's question where `answered_by`
    accepts it (under a new example_id: the content changed), and a report. Unchanged when `settings.base_url` is unset."""
    report = QuestionReport()
    if not settings.base_url or examples.is_empty():
        return examples, report
    from forge_pipeline.atomic import write_json_atomic

    cache_path = _cache_path(cache_dir, settings) if cache_dir is not None else None
    cache = json.loads(cache_path.read_text()) if cache_path is not None and cache_path.exists() else {}
    client = client or _client(settings)
    rows = examples.to_dicts()
    for row in rows:
        if row["source"] != "vault":
            continue
        messages = row["messages"] or []
        user = next((i for i, m in enumerate(messages) if m["role"] == "user"), None)
        section = next((m["content"] for m in reversed(messages) if m["role"] == "assistant"), "")
        if user is None or not section.strip():
            continue
        key = hashlib.sha256(section.encode()).hexdigest()
        if key in cache:
            report.cached += 1
        else:
            cache[key] = ask(client, settings, section)
            report.asked += 1
        question = clean_question(cache[key])
        accepted, reason = answered_by(question, section, settings.min_key_term_overlap)
        if len(report.examples) < 20:
            report.examples.append(
                {
                    "section": section[:120],
                    "rule_prompt": messages[user]["content"],
                    "generated": question,
                    "verdict": reason if accepted else f"refused: {reason}",
                }
            )
        if not accepted:
            report.refuse(reason)
            continue
        report.accepted += 1
        new_messages = [dict(m) for m in messages]
        new_messages[user] = {"role": "user", "content": question}
        row["messages"] = new_messages
        row["example_id"] = example_id_for(new_messages)
    if cache_path is not None and report.asked:
        cache_path.parent.mkdir(parents=True, exist_ok=True)
        write_json_atomic(cache_path, cache)
    return pl.DataFrame(rows, schema=examples.schema), report
