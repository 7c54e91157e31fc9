"""Turn notes and conversations into chat training examples (EXAMPLE_SCHEMA).

Notes: only notes carrying one of `ingest.reflection_tags` (or a nested child such as `reflection/work`)
become examples. Each becomes system + user + assistant, where the assistant's reply is the note's own
text (the person's voice) and the user's prompt is derived from the note by the first rule that applies:

1. Decision (`decision` tag) with a situation section (a heading named Situation, Context, Background or
   Problem): prompt = "I'm facing this decision: <that section's text> What should I consider?";
   reply = every other section (Options / Decision / Why ...), headings kept as Markdown.
2. Learning (`learning` tag): prompt = "What did you learn about <topic>?", where topic is the title
   without a leading "What I learned about"; reply = the body.
3. Journal (`journal` tag): prompt = "How did <weekday, month day, year of `created`> go? What's on your
   mind?"; reply = the body.
4. Anything else (including a decision without a situation section): prompt = "What are your thoughts on
   <title>?" plus " In particular: <first heading>." when the first heading says something the title does
   not; reply = the body.
The note's first heading is dropped from the reply when it is the note's title line (a `# Title` restates
the prompt). A reply that ends up empty is quarantined (`empty_reply`).

Conversations: the messages as read, with `ingest.system_prompt` put first when there is no system
message; their source is "conversation", or "import" for files `forge dataset validate --add` accepted. Interaction records: a `corrected_reply` replaces the last assistant message (the person said
what it should have been), and the reply chosen in a `choice` between two answers the trailing user turn; a `down` rating without a correction is quarantined (`rated_down`), so the
model is not trained on a reply its user rejected. Trailing user messages after the last assistant reply
are trimmed (nothing answers them). Examples with no user turn or no assistant turn are quarantined
(`no_user_turn` / `no_assistant_turn`).

Control characters (ESC, BEL, CR, ... everything but newline and tab) are removed from every message: a
reply holding `\x1b]0;TITLE\x07` would otherwise be trained on and replayed into a reviewer's terminal.

Output order: by example_id (then source and path, so duplicates are ordered deterministically too).
Duplicates are kept: removing them is the dedup stage's job.
"""

from __future__ import annotations

import re
from datetime import datetime

import polars as pl

from forge_pipeline.records import (
    Quarantine,
    example_id_for,
    examples_frame,
    strip_control,
)
from forge_pipeline.settings import ForgeSettings

SITUATION_HEADINGS = {"situation", "context", "background", "problem"}
_H2_SPLIT = re.compile(r"^(#{2,6})\s+(.+?)\s*$", re.MULTILINE)


def _is_reflection(tags: list[str], reflection_tags: list[str]) -> bool:
    return any(tag == r or tag.startswith(r + "/") for tag in tags for r in reflection_tags)


def _strip_title_line(body: str) -> str:
    lines = body.strip().split("\n")
    if lines and re.match(r"^#\s+", lines[0]):
        lines = lines[1:]
    return "\n".join(lines).strip()


def _sections(body: str) -> tuple[str, list[tuple[str, str, str]]]:
    """(text before the first sub-heading, [(marker, heading, text), ...])."""
    matches = list(_H2_SPLIT.finditer(body))
    if not matches:
        return body.strip(), []
    preamble = body[: matches[0].start()].strip()
    sections = []
    for index, match in enumerate(matches):
        end = matches[index + 1].start() if index + 1 < len(matches) else len(body)
        sections.append((match.group(1), match.group(2).strip(), body[match.end():end].strip()))
    return preamble, sections


def note_prompt_and_reply(note: dict) -> tuple[str, str, str]:
    """(rule name, user prompt, assistant reply) for one reflection note, by the module's rules."""
    tags = set(note["tags"] or [])
    title = note["title"]
    body = _strip_title_line(note["body"] or "")
    if "decision" in tags:
        preamble, sections = _sections(body)
        situation = next((s for s in sections if s[1].lower().rstrip(":") in SITUATION_HEADINGS), None)
        if situation is not None and situation[2]:
            rest = [f"{marker} {heading}\n\n{text}".strip() for marker, heading, text in sections if
                    (marker, heading, text) != situation]
            reply = "\n\n".join(part for part in [preamble, *rest] if part)
            context = situation[2].rstrip()
            if context[-1:] not in ".!?":
                context += "."
            return "decision", f"I'm facing this decision: {context} What should I consider?", reply
    if "learning" in tags:
        topic = re.sub(r"^what i learned about\s+", "", title, flags=re.IGNORECASE).strip() or title
        return "learning", f"What did you learn about {topic}?", body
    if "journal" in tags and note.get("created") is not None:
        created: datetime = note["created"]
        day = f"{created:%A}, {created:%B} {created.day}, {created.year}"
        return "journal", f"How did {day} go? What's on your mind?", body
    prompt = f"What are your thoughts on {title}?"
    headings = note.get("headings") or []
    if headings and headings[0].strip().lower() not in title.lower() and title.lower() not in headings[0].lower():
        prompt += f" In particular: {headings[0].strip()}."
    return "generic", prompt, body


def _check_turns(messages: list[dict]) -> str | None:
    roles = {m["role"] for m in messages}
    if "user" not in roles:
        return "no_user_turn"
    if "assistant" not in roles:
        return "no_assistant_turn"
    return None


def _clean(messages: list[dict]) -> list[dict]:
    return [{"role": m["role"], "content": strip_control(m["content"])} for m in messages]


def _with_system(messages: list[dict], system_prompt: str) -> list[dict]:
    if messages and messages[0]["role"] == "system":
        return messages
    return [{"role": "system", "content": system_prompt}, *messages]


def build_training_examples(notes: pl.DataFrame, conversations: pl.DataFrame,
                            settings: ForgeSettings) -> tuple[pl.DataFrame, Quarantine]:
    """Examples (EXAMPLE_SCHEMA) from reflection notes and conversations, plus what was dropped and why."""
    ingest = settings.ingest
    quarantine = Quarantine("training_examples")
    rows: list[dict] = []
    for note in notes.iter_rows(named=True):
        if not _is_reflection(note["tags"] or [], ingest.reflection_tags):
            continue
        rule, prompt, reply = note_prompt_and_reply(note)
        prompt, reply = strip_control(prompt), strip_control(reply)
        if not reply.strip():
            quarantine.add(reason="empty_reply", file=note["path"], detail=f"rule {rule}: the note has no text after its title")
            continue
        messages = [{"role": "system", "content": ingest.system_prompt},
                    {"role": "user", "content": prompt}, {"role": "assistant", "content": reply}]
        rows.append({"example_id": example_id_for(messages), "messages": messages, "source": "vault",
                     "source_path": note["path"], "conversation_id": None, "created_at": note["created"],
                     "tags": list(note["tags"] or [])})
    for conv in conversations.iter_rows(named=True):
        messages = [dict(m) for m in conv["messages"] or []]
        is_interaction = conv["source_format"] == "interaction"
        where = {"file": conv["source_path"], "line": conv["line"], "record_id": conv["conversation_id"]}
        if is_interaction and conv["corrected_reply"]:
            last = max((i for i, m in enumerate(messages) if m["role"] == "assistant"), default=None)
            if last is None:
                messages.append({"role": "assistant", "content": conv["corrected_reply"]})
            else:
                messages[last] = {"role": "assistant", "content": conv["corrected_reply"]}
        elif is_interaction and conv["rating"] == "down":
            quarantine.add(reason="rated_down", detail="rated down and no corrected_reply", payload=messages, **where)
            continue
        problem = _check_turns(messages)
        while not problem and messages[-1]["role"] == "user":
            messages.pop()
        if problem:
            quarantine.add(reason=problem, detail=f"{conv['source_format']} conversation has {problem.replace('_', ' ')}",
                           payload=conv["messages"], **where)
            continue
        messages = _with_system(_clean(messages), ingest.system_prompt)
        source = {"interaction": "interaction", "import": "import"}.get(conv["source_format"], "conversation")
        rows.append({"example_id": example_id_for(messages), "messages": messages, "source": source,
                     "source_path": conv["source_path"], "conversation_id": conv["conversation_id"],
                     "created_at": conv["created_at"], "tags": []})
    frame = examples_frame(rows)
    return frame.sort(["example_id", "source", "source_path", "conversation_id"], nulls_last=True), quarantine
