"""Checks for user-provided chat JSONL, modelled on what hosted fine-tuning APIs reject.

One JSON object per line with a `messages` list; roles system/user/assistant; a system message only first;
after it user and assistant alternate starting with user; at least one assistant reply; no empty content;
and each example under the token limit (settings.train.max_length).

Token counts are an approximation so validation needs no tokenizer (the base model may not be built yet):
ceil(characters / 4) per message content plus 4 tokens per message for the chat template's role markers,
plus 3 for the reply primer. OpenAI documents ~4 characters per token for English; ChatML spends
~4 tokens per message on `<|im_start|>role\\n ... <|im_end|>\\n`. It over-counts code and under-counts
non-Latin scripts, so files near the limit are worth checking with the real tokenizer.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from pydantic import ValidationError

from forge_pipeline.records import ROLES, ChatMessage

CHARS_PER_TOKEN = 4
TOKENS_PER_MESSAGE = 4
TOKENS_PER_REPLY = 3


def approx_tokens(messages: Sequence[Mapping[str, str]]) -> int:
    """Approximate prompt+completion tokens of one chat (see the module docstring)."""
    return TOKENS_PER_REPLY + sum(
        TOKENS_PER_MESSAGE + math.ceil(len(str(m.get("content") or "")) / CHARS_PER_TOKEN) for m in messages
    )


OPTIONAL_FIELDS = ("name", "weight")


def _message_problem(index: int, turn: dict, error: dict) -> str:
    """One pydantic error of ChatMessage in this checker's words (field path, what was wrong, what is expected)."""
    field = ".".join(str(part) for part in error["loc"])
    if error["type"] == "extra_forbidden":
        return f"messages[{index}] has unsupported field(s) {[field]}"
    if error["type"] == "missing":
        return f"messages[{index}].{field} is missing"
    if field == "role":
        return f"messages[{index}].role is {turn.get('role')!r}, expected one of {', '.join(ROLES)}"
    if field == "content" and isinstance(turn.get("content"), str):
        return f"messages[{index}].content is empty"
    return f"messages[{index}].{field} must be a string, got {type(turn.get(field)).__name__}"


def message_problems(messages: object, max_tokens: int | None = None) -> list[str]:
    """Every problem of one `messages` value, each naming the message index and field."""
    if not isinstance(messages, list):
        return [f"field messages must be a list, got {type(messages).__name__}"]
    if not messages:
        return ["field messages is empty"]
    problems: list[str] = []
    roles: list[str | None] = []
    for i, message in enumerate(messages):
        if not isinstance(message, dict):
            problems.append(f"messages[{i}] must be an object, got {type(message).__name__}")
            roles.append(None)
            continue
        # name and weight are fields hosted fine-tuning formats allow; the turn itself is a ChatMessage.
        turn = {key: value for key, value in message.items() if key not in OPTIONAL_FIELDS}
        try:
            roles.append(ChatMessage.model_validate(turn).role)
        except ValidationError as err:
            problems.extend(_message_problem(i, turn, e) for e in err.errors())
            role = message.get("role")
            roles.append(role if role in ROLES else None)
    for i, role in enumerate(roles):
        if role == "system" and i != 0:
            problems.append(f"messages[{i}].role is system, but a system message may only come first")
    turns = [(i, r) for i, r in enumerate(roles) if r in ("user", "assistant")]
    expected = "user"
    for i, role in turns:
        if role != expected:
            problems.append(f"messages[{i}].role is {role}, expected {expected} (user and assistant must alternate, "
                            "starting with user)")
            break
        expected = "assistant" if role == "user" else "user"
    if "assistant" not in roles:
        problems.append("no assistant message: there is nothing to learn from")
    if max_tokens is not None and not problems:
        n = approx_tokens(messages)
        if n > max_tokens:
            problems.append(f"about {n} tokens, over the limit of {max_tokens} (train.max_length)")
    return problems


@dataclass
class ValidationReport:
    path: Path
    examples: int
    problems: list[tuple[int, str]]  # (1-based line, problem)
    tokens: list[int]

    @property
    def ok(self) -> bool:
        return not self.problems and self.examples > 0


def validate_jsonl(path: Path, max_tokens: int | None = None) -> ValidationReport:
    path = Path(path)
    if not path.is_file():
        return ValidationReport(path, 0, [(0, f"{path}: no such file")], [])
    problems: list[tuple[int, str]] = []
    tokens: list[int] = []
    examples = 0
    with path.open(encoding="utf-8", errors="strict") as handle:
        try:
            lines = list(handle)
        except UnicodeDecodeError as err:
            return ValidationReport(path, 0, [(0, f"not UTF-8 text ({err})")], [])
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        examples += 1
        try:
            record = json.loads(line)
        except json.JSONDecodeError as err:
            problems.append((number, f"not valid JSON: {err.msg} at column {err.colno}"))
            continue
        if not isinstance(record, dict):
            problems.append((number, f"expected a JSON object, got {type(record).__name__}"))
            continue
        if "messages" not in record:
            problems.append((number, "field messages is missing"))
            continue
        line_problems = message_problems(record["messages"], max_tokens)
        problems.extend((number, p) for p in line_problems)
        if not line_problems:
            tokens.append(approx_tokens(record["messages"]))
    if examples == 0:
        problems.append((0, "the file has no examples"))
    return ValidationReport(path, examples, problems, tokens)


def add_import(path: Path, imports_dir: Path) -> Path:
    """Copy a validated file into <data_root>/imports/ (ingest reads it as messages JSONL on the next run)."""
    imports_dir.mkdir(parents=True, exist_ok=True)
    target = imports_dir / Path(path).name
    from forge_pipeline.atomic import write_bytes_atomic

    write_bytes_atomic(target, Path(path).read_bytes())
    return target

