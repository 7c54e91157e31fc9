"""Readers for conversations: `messages` JSONL, ChatGPT `conversations.json` exports, and interaction logs.

Every reader yields one row per conversation with CONVERSATIONS_SCHEMA; anything it cannot use goes to the
quarantine with the file, the 1-based line (for JSONL) and the reason.

Role rules (shared by all formats):
- `human` → user; `ai`, `bot`, `gpt`, `model` → assistant; `system`/`user`/`assistant` as they are.
- Any other role (e.g. `robot`) quarantines the whole conversation (`unknown_role`): guessing who spoke
  would teach the model the wrong voice.
- `tool`/`function` messages (ChatGPT plug-in and browsing results) are dropped: they are machine output,
  not something the assistant should learn to say. Dropping one can leave two assistant messages in a row
  (the "let me check" message and the answer); consecutive messages of the same role are then merged with
  a blank line between them, so turns keep alternating.
- Messages whose content is empty or whitespace are dropped (ChatGPT's hidden system nodes are like that).

ChatGPT exports store each conversation as a tree (`mapping`) because edited messages branch; the
conversation the user saw is the path from `current_node` up the `parent` chain to the root, reversed.
A `current_node` missing from the mapping, a parent that does not exist, or a cycle quarantines that
conversation (`broken_tree`).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import polars as pl

from forge_pipeline.errors import ForgeError
from forge_pipeline.records import MESSAGE_DTYPE, ColumnType, Quarantine
from forge_pipeline.settings import interaction_folders

CONVERSATIONS_SCHEMA: dict[str, ColumnType] = {
    "conversation_id": pl.String,
    "source_format": pl.String,  # "messages_jsonl" | "chatgpt_export" | "interaction" | "import"
    "source_path": pl.String,
    "line": pl.Int64,  # 1-based line for JSONL sources, null for the ChatGPT export
    "title": pl.String,
    "created_at": pl.Datetime("us", "UTC"),
    "messages": MESSAGE_DTYPE,
    "rating": pl.String,  # "up" | "down" | null (interactions only)
    "feedback": pl.String,
    "corrected_reply": pl.String,
}

ROLE_ALIASES = {
    "system": "system",
    "user": "user",
    "human": "user",
    "assistant": "assistant",
    "ai": "assistant",
    "bot": "assistant",
    "gpt": "assistant",
    "model": "assistant",
}
DROPPED_ROLES = {"tool", "function"}


class ConversationError(ForgeError, ValueError):
    """One conversation cannot be used; `reason` is the quarantine reason, the message the detail."""

    def __init__(self, reason: str, detail: str):
        super().__init__(detail)
        self.reason = reason


def _quarantine_record(quarantine, err, path, number: int, record_id: str, record) -> None:
    """A JSONL record that cannot be read as a conversation, kept with its reason, file and line."""
    quarantine.add(reason=err.reason, detail=str(err), file=str(path), line=number, record_id=record_id, payload=record)


def normalize_messages(raw) -> list[dict]:
    """Validate and normalize a `messages` list by the module's role rules. Raises ConversationError."""
    if not isinstance(raw, list):
        raise ConversationError("wrong_shape", f"'messages' is a {type(raw).__name__}, expected a list")
    out: list[dict] = []
    for index, message in enumerate(raw):
        if not isinstance(message, dict):
            raise ConversationError(
                "wrong_shape", f"messages[{index}] is a {type(message).__name__}, expected an object"
            )
        role = message.get("role")
        content = message.get("content")
        if not isinstance(role, str):
            raise ConversationError("wrong_shape", f"messages[{index}].role is missing or not a string")
        if role.lower() in DROPPED_ROLES:
            continue
        if role.lower() not in ROLE_ALIASES:
            raise ConversationError(
                "unknown_role",
                f"messages[{index}].role is {role!r}; expected one of {sorted(set(ROLE_ALIASES))} or a tool role",
            )
        if content is None:
            content = ""
        if not isinstance(content, str):
            raise ConversationError(
                "wrong_shape", f"messages[{index}].content is a {type(content).__name__}, expected a string"
            )
        if not content.strip():
            continue
        role = ROLE_ALIASES[role.lower()]
        if out and out[-1]["role"] == role:
            out[-1] = {"role": role, "content": out[-1]["content"] + "\n\n" + content}
        else:
            out.append({"role": role, "content": content})
    return out


def _timestamp(value, what: str) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, bool):
        raise ConversationError("bad_timestamp", f"{what} is a bool, expected a string or number")
    if isinstance(value, (int, float)):
        try:
            return datetime.fromtimestamp(value, tz=UTC)
        except (OverflowError, ValueError, OSError):  # 1e20, NaN, inf: one bad record, not a crashed run
            raise ConversationError("bad_timestamp", f"{what} {value!r} is not a Unix time in range") from None
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value.strip())
        except ValueError:
            raise ConversationError("bad_timestamp", f"{what} {value!r} is not an ISO-8601 time") from None
        return (parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)).astimezone(UTC)
    raise ConversationError("bad_timestamp", f"{what} is a {type(value).__name__}, expected a string or number")


def _row(**kwargs) -> dict:
    row = dict.fromkeys(CONVERSATIONS_SCHEMA)
    row.update(kwargs)
    return row


def _jsonl_records(path: Path, max_line_bytes: int, quarantine: Quarantine) -> Iterator[tuple[int, dict]]:
    """(line number, object) for every usable line; blank lines are skipped, the rest quarantined."""
    with open(path, "rb") as handle:
        for number, raw in enumerate(handle, start=1):
            if not raw.strip():
                continue
            if len(raw) > max_line_bytes:
                quarantine.add(
                    reason="line_too_long",
                    file=str(path),
                    line=number,
                    payload=raw[:200].decode("utf-8", "replace"),
                    detail=f"{len(raw)} bytes > ingest.max_jsonl_line_bytes={max_line_bytes}",
                )
                continue
            try:
                text = raw.decode("utf-8")
                # Editors on Windows start files with a byte-order mark; it is not part of the first record.
                record = json.loads(text.removeprefix("\ufeff") if number == 1 else text)
            except UnicodeDecodeError as err:
                quarantine.add(reason="not_utf8", file=str(path), line=number, detail=str(err))
                continue
            except json.JSONDecodeError as err:
                quarantine.add(
                    reason="invalid_json",
                    file=str(path),
                    line=number,
                    detail=f"{err.msg} (column {err.colno})",
                    payload=raw.decode("utf-8", "replace"),
                )
                continue
            except RecursionError:  # `[[[[...` thousands deep exhausts the parser's stack
                quarantine.add(
                    reason="invalid_json",
                    file=str(path),
                    line=number,
                    detail="JSON nested too deeply to parse",
                    payload=raw[:200].decode("utf-8", "replace"),
                )
                continue
            if not isinstance(record, dict):
                quarantine.add(
                    reason="wrong_shape",
                    file=str(path),
                    line=number,
                    detail=f"line is a JSON {type(record).__name__}, expected an object",
                    payload=record,
                )
                continue
            yield number, record


def read_messages_jsonl(
    path: Path, max_line_bytes: int, quarantine: Quarantine, source_format: str = "messages_jsonl"
) -> list[dict]:
    """`{"messages": [...], "conversation_id"?, "created_at"?, "title"?}` per line; `source_format` "import"
    for files `forge dataset validate --add` accepted."""
    rows = []
    for number, record in _jsonl_records(path, max_line_bytes, quarantine):
        conversation_id = str(record.get("conversation_id") or record.get("id") or f"{path.name}:{number}")
        try:
            if "messages" not in record:
                raise ConversationError("wrong_shape", "no 'messages' field")
            messages = normalize_messages(record["messages"])
            created = _timestamp(record.get("created_at"), "created_at")
        except ConversationError as err:
            _quarantine_record(quarantine, err, path, number, conversation_id, record)
            continue
        rows.append(
            _row(
                conversation_id=conversation_id,
                source_format=source_format,
                source_path=str(path),
                line=number,
                title=record.get("title"),
                created_at=created,
                messages=messages,
            )
        )
    return rows


def chatgpt_active_path(conversation: dict) -> list[dict]:
    """The message objects on the branch the user last saw (root first). Raises ConversationError."""
    mapping = conversation.get("mapping")
    current = conversation.get("current_node")
    if not isinstance(mapping, dict):
        raise ConversationError("broken_tree", "'mapping' is missing or not an object")
    # JSON object keys are strings, so a non-string id (a list, an object) can never be found; checking the
    # type first also keeps an unhashable id from crashing the whole export with a TypeError.
    if not isinstance(current, str) or current not in mapping:
        raise ConversationError("broken_tree", f"current_node {current!r} is not in the mapping")
    chain: list[dict] = []
    seen: set[str] = set()
    node_id: object = current  # parent ids come from the file: anything JSON can hold
    while node_id is not None:
        if not isinstance(node_id, str) or node_id not in mapping:
            raise ConversationError("broken_tree", f"parent {node_id!r} is not in the mapping")
        if node_id in seen:
            raise ConversationError("broken_tree", f"cycle in the parent chain at node {node_id!r}")
        seen.add(node_id)
        node = mapping[node_id]
        if not isinstance(node, dict):
            raise ConversationError(
                "broken_tree", f"mapping[{node_id!r}] is a {type(node).__name__}, expected an object"
            )
        message = node.get("message")
        if message:
            if not isinstance(message, dict):
                raise ConversationError(
                    "wrong_shape", f"mapping[{node_id!r}].message is a {type(message).__name__}, expected an object"
                )
            for field, kind in (("author", dict), ("content", dict)):
                if message.get(field) is not None and not isinstance(message[field], kind):
                    raise ConversationError(
                        "wrong_shape",
                        f"mapping[{node_id!r}].message.{field} is a "
                        f"{type(message[field]).__name__}, expected an object",
                    )
            parts = (message.get("content") or {}).get("parts")
            if parts is not None and not isinstance(parts, list):
                # A string here used to be iterated character by character into the text.
                raise ConversationError(
                    "wrong_shape",
                    f"mapping[{node_id!r}].message.content.parts is a {type(parts).__name__}, expected a list",
                )
            chain.append(message)
        node_id = node.get("parent")
    chain.reverse()
    return chain


def _chatgpt_text(message: dict) -> str:
    content = message.get("content") or {}
    parts = content.get("parts") or []
    if content.get("content_type", "text") != "text":
        return ""  # images, code-interpreter output etc. carry no chat text for training
    return "\n".join(p for p in parts if isinstance(p, str))


def read_chatgpt_export(path: Path, quarantine: Quarantine) -> list[dict]:
    try:
        data = json.loads(Path(path).read_text("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        quarantine.add(reason="invalid_json", file=str(path), detail=f"cannot read ChatGPT export: {err}")
        return []
    except RecursionError:
        quarantine.add(
            reason="invalid_json", file=str(path), detail="cannot read ChatGPT export: JSON nested too deeply"
        )
        return []
    except OSError as err:
        quarantine.add(reason="unreadable", file=str(path), detail=f"cannot read ChatGPT export: {err.strerror or err}")
        return []
    if not isinstance(data, list):
        quarantine.add(reason="wrong_shape", file=str(path), detail="a ChatGPT export is a JSON list of conversations")
        return []
    rows = []
    for index, conversation in enumerate(data):
        if not isinstance(conversation, dict):
            quarantine.add(reason="wrong_shape", file=str(path), detail=f"item {index} is not an object")
            continue
        conversation_id = str(conversation.get("conversation_id") or conversation.get("id") or f"{path.name}#{index}")
        try:
            chain = chatgpt_active_path(conversation)
            raw = [{"role": (m.get("author") or {}).get("role"), "content": _chatgpt_text(m)} for m in chain]
            messages = normalize_messages(raw)
            created = _timestamp(conversation.get("create_time"), "create_time")
        except ConversationError as err:
            quarantine.add(
                reason=err.reason,
                detail=f"conversation {index} ({conversation_id}): {err}",
                file=str(path),
                record_id=conversation_id,
                payload={"title": conversation.get("title"), "current_node": conversation.get("current_node")},
            )
            continue
        rows.append(
            _row(
                conversation_id=conversation_id,
                source_format="chatgpt_export",
                source_path=str(path),
                title=conversation.get("title"),
                created_at=created,
                messages=messages,
            )
        )
    return rows


def read_interactions(path: Path, max_line_bytes: int, quarantine: Quarantine) -> list[dict]:
    """Server interaction logs (format in docs/CONVENTIONS.md)."""
    rows = []
    for number, record in _jsonl_records(path, max_line_bytes, quarantine):
        conversation_id = str(record.get("interaction_id") or f"{path.name}:{number}")
        try:
            if "messages" not in record:
                raise ConversationError("wrong_shape", "no 'messages' field")
            messages = normalize_messages(record["messages"])
            created = _timestamp(record.get("received_at"), "received_at")
            rating = record.get("rating")
            if rating not in (None, "up", "down"):
                raise ConversationError("wrong_shape", f"rating is {rating!r}; expected 'up', 'down' or null")
            corrected_reply = record.get("corrected_reply") or _chosen_reply(record.get("choice"))
        except ConversationError as err:
            _quarantine_record(quarantine, err, path, number, conversation_id, record)
            continue
        rows.append(
            _row(
                conversation_id=conversation_id,
                source_format="interaction",
                source_path=str(path),
                line=number,
                created_at=created,
                messages=messages,
                rating=rating,
                feedback=record.get("feedback"),
                corrected_reply=corrected_reply,
            )
        )
    return rows


def _chosen_reply(choice) -> str | None:
    """The reply a person picked out of two answers the last user turn like a correction would: the
    messages end with that user turn, and the chosen reply becomes the example's assistant turn (the pair
    itself goes to preference_pairs)."""
    if choice is None:
        return None
    replies, chosen = (choice.get("replies"), choice.get("chosen")) if isinstance(choice, dict) else (None, None)
    if (
        not isinstance(replies, list)
        or len(replies) != 2
        or chosen not in (0, 1)
        or isinstance(chosen, bool)
        or not isinstance(replies[chosen], str)
    ):
        raise ConversationError(
            "wrong_shape", f"choice must be {{'replies': [a, b], 'chosen': 0 or 1}}, got {choice!r}"[:300]
        )
    return replies[chosen]


def read_conversations(
    conversations_dir: Path, interactions_dir: Path | None, max_line_bytes: int, imports_dir: Path | None = None
) -> tuple[pl.DataFrame, Quarantine]:
    """Every conversation source under `conversations_dir` plus the server's interactions folder.

    `*.jsonl` at the top of `conversations_dir` are `messages` JSONL, any `conversations.json` below it is a
    ChatGPT export, and `*.jsonl` in `<conversations_dir>/interactions/` and in `interactions_dir` are
    interaction logs. `*.jsonl` in `imports_dir` (files `forge curate validate --add` accepted) are
    `messages` JSONL too. Duplicate rows (same source, same conversation id and messages) are kept here;
    dedup is a later stage's job.
    """
    quarantine = Quarantine("conversations")
    rows: list[dict] = []
    conversations_dir = Path(conversations_dir)
    if conversations_dir.is_dir():
        for path in sorted(conversations_dir.glob("*.jsonl")):
            rows += read_messages_jsonl(path, max_line_bytes, quarantine)
        for path in sorted(conversations_dir.rglob("conversations.json")):
            rows += read_chatgpt_export(path, quarantine)
    if imports_dir is not None and Path(imports_dir).is_dir():
        for path in sorted(Path(imports_dir).glob("*.jsonl")):
            rows += read_messages_jsonl(path, max_line_bytes, quarantine, source_format="import")
    for folder in interaction_folders(conversations_dir, interactions_dir):
        if folder.is_dir():
            for path in sorted(folder.glob("*.jsonl")):
                rows += read_interactions(path, max_line_bytes, quarantine)
    return conversations_frame(rows), quarantine


def conversations_frame(rows: list[dict]) -> pl.DataFrame:
    if not rows:
        return pl.DataFrame(schema=CONVERSATIONS_SCHEMA)
    return pl.DataFrame(rows, schema=CONVERSATIONS_SCHEMA)
