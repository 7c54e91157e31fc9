"""Checks for user-provided chat JSONL, modelled on what hosted fine-tuning APIs reject.

One JSON object per line with a `messages` list; roles system/user/assistant; a system message only first;
after it user and assistant alternate starting with user; at least one assistant reply; no empty content;
and each example under the token limit (settings.train.max_length).

Token counts are an approximation so validation needs no tokenizer (the base model may not be built yet):
ceil(characters / 4) per message content plus 4 tokens per message for the chat template's role markers,
plus 3 for the reply primer. OpenAI documents ~4 characters per token for English; ChatML spends
~4 tokens per message on `<|im_start|>role\\n ... <|im_end|>\\n`. It over-counts code and under-counts
non-Latin scripts, so files near the limit are worth checking with the real tokenizer.

Beyond the hosted APIs' rules: NaN/Infinity (not JSON, though Python's parser takes them) and control
characters such as NUL or ESC in content are refused, and an example the language filter
(`prepare.filter.languages`) will drop is reported as a warning, since it would vanish without a word later.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import ValidationError
from pydantic_core import ErrorDetails

from forge_pipeline.records import ROLES, ChatMessage, escape_control, strip_control

CHARS_PER_TOKEN = 4
TOKENS_PER_MESSAGE = 4
TOKENS_PER_REPLY = 3


def approx_tokens(messages: Sequence[Mapping[str, str]]) -> int:
    """Approximate prompt+completion tokens of one chat (see the module docstring)."""
    return TOKENS_PER_REPLY + sum(
        TOKENS_PER_MESSAGE + math.ceil(len(str(m.get("content") or "")) / CHARS_PER_TOKEN) for m in messages
    )


OPTIONAL_FIELDS = ("name", "weight")


def _message_problem(index: int, turn: dict, error: ErrorDetails) -> str:
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
            continue
        content = turn["content"]
        if strip_control(content) != content.replace("\r\n", "\n").replace("\r", "\n"):
            bad = sorted({escape_control(c) for c in content if strip_control(c) == "" and c != "\r"})
            problems.append(f"messages[{i}].content holds control character(s) {', '.join(bad)}; remove them")
    for i, role in enumerate(roles):
        if role == "system" and i != 0:
            problems.append(f"messages[{i}].role is system, but a system message may only come first")
    turns = [(i, r) for i, r in enumerate(roles) if r in ("user", "assistant")]
    expected = "user"
    for i, role in turns:
        if role != expected:
            problems.append(
                f"messages[{i}].role is {role}, expected {expected} (user and assistant must alternate, "
                "starting with user)"
            )
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
    warnings: list[tuple[int, str]] = field(default_factory=list)  # (line, note): valid, but worth knowing

    @property
    def ok(self) -> bool:
        return not self.problems and self.examples > 0


def _refuse_constant(name: str):
    raise ValueError(f"{name} is not valid JSON (use a number or null)")


def _not_a_file(path: Path) -> str | None:
    if not path.exists():
        return "no such file"
    if path.is_dir():
        return "this is a folder; give a .jsonl file inside it"
    if not path.is_file():
        return "not a regular file (a device or pipe); give a .jsonl file"
    return None


def _starts_with(path: Path, prefix: bytes) -> bool:
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(65536), b""):
            stripped = block.lstrip()
            if stripped:
                return stripped.startswith(prefix)
    return False


def _lines(handle, problems: list[tuple[int, str]]):
    """(line number, text) of each line; a line that is not UTF-8 is a problem naming it, not a crash."""
    for number, raw in enumerate(handle, start=1):
        try:
            yield number, raw.decode("utf-8").rstrip("\r\n")
        except UnicodeDecodeError as err:
            problems.append((number, f"not UTF-8 text ({err})"))


def validate_jsonl(path: Path, max_tokens: int | None = None, languages: list[str] | None = None) -> ValidationReport:
    """Every problem of a chat JSONL file by line; `languages` (prepare.filter.languages) adds a warning for
    each example the language filter would drop."""
    path = Path(path)
    wrong = _not_a_file(path)
    if wrong:
        return ValidationReport(path, 0, [(0, wrong)], [])
    if _starts_with(path, b"["):
        try:
            whole = json.loads(path.read_text(encoding="utf-8"))
        except (ValueError, RecursionError):
            whole = None
        if isinstance(whole, list):
            problem = (
                f"this is one JSON array of {len(whole)} item(s), not JSONL: write one object per line "
                "(e.g. jq -c '.[]' FILE > FILE.jsonl)"
            )
            return ValidationReport(path, 0, [(0, problem)], [])
    problems: list[tuple[int, str]] = []
    warnings: list[tuple[int, str]] = []
    tokens: list[int] = []
    examples = 0
    with open(path, "rb") as handle:  # line by line: an upload may be hundreds of MB
        for number, line in _lines(handle, problems):
            if not line.strip():
                continue
            examples += 1
            try:
                record = json.loads(line, parse_constant=_refuse_constant)
            except json.JSONDecodeError as err:
                problems.append((number, f"not valid JSON: {err.msg} at column {err.colno}"))
                continue
            except ValueError as err:
                problems.append((number, f"not valid JSON: {err}"))
                continue
            except RecursionError:
                problems.append((number, "JSON nested too deeply to parse"))
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
                language = _dropped_language(record["messages"], languages)
                if language:
                    note = (
                        f"detected language {language!r} is not in prepare.filter.languages {languages}: "
                        "the filter will drop this example"
                    )
                    warnings.append((number, note))
    if examples == 0:
        problems.append((0, "the file has no examples"))
    return ValidationReport(path, examples, problems, tokens, warnings)


def _dropped_language(messages: list[dict], languages: list[str] | None) -> str | None:
    """The detected language when the quality filter's language check would drop these messages."""
    if not languages:
        return None
    from forge_pipeline.prepare.quality import (
        PLACEHOLDER_RE,
        detect_language,
        line_stats,
    )
    from forge_pipeline.records import example_text

    _, _, prose = line_stats(example_text(messages))
    language = detect_language(PLACEHOLDER_RE.sub(" ", prose))
    return language if language is not None and language not in languages else None


def add_import(path: Path, imports_dir: Path) -> Path:
    """Copy a validated file into <data_root>/imports/ (ingest reads it as messages JSONL on the next run)."""
    imports_dir.mkdir(parents=True, exist_ok=True)
    target = imports_dir / Path(path).name
    from forge_pipeline.atomic import write_bytes_atomic

    write_bytes_atomic(target, Path(path).read_bytes())
    return target
