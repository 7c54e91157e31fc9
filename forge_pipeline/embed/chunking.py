"""Split examples into chunks worth embedding.

Rule (documented size: `embed.chunk_max_chars`, 1,000 characters by default, ~200-250 tokens):
- An example whose whole text fits is ONE chunk whose text is exactly the text the dedup step embeds
  (`prepare.dedup.embedding_text`), so its vector is already in the shared embedding cache.
- A longer one is split per message (the system prompt is left out: it is the same everywhere), each
  message by Markdown heading into sections, each section by blank line into paragraphs; paragraphs are
  packed greedily into chunks up to the size, each chunk prefixed with its role and section heading so it
  reads on its own. A paragraph longer than the size is cut at whitespace.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

from forge_pipeline.prepare.dedup import embedding_text

HEADING_RE = re.compile(r"^#{1,6}\s+\S")


@dataclass(frozen=True)
class Chunk:
    chunk_index: int
    heading: str | None
    text: str

    @property
    def text_hash(self) -> str:
        return hashlib.sha256(self.text.encode("utf-8")).hexdigest()


def _sections(content: str) -> list[tuple[str | None, str]]:
    """(heading, body) pairs in order; text before the first heading has no heading."""
    sections: list[tuple[str | None, list[str]]] = [(None, [])]
    for line in content.splitlines():
        if HEADING_RE.match(line):
            sections.append((line.lstrip("#").strip(), []))
        else:
            sections[-1][1].append(line)
    return [(h, "\n".join(body).strip()) for h, body in sections if h or "\n".join(body).strip()]


def _cut(paragraph: str, size: int) -> list[str]:
    """A paragraph over `size` characters, cut at the last whitespace before each limit."""
    pieces = []
    while len(paragraph) > size:
        cut = paragraph.rfind(" ", 0, size)
        cut = cut if cut > size // 2 else size
        pieces.append(paragraph[:cut].strip())
        paragraph = paragraph[cut:].strip()
    return pieces + ([paragraph] if paragraph else [])


def _pack(prefix: str, paragraphs: list[str], size: int) -> list[str]:
    budget = max(size - len(prefix), size // 2)
    chunks, current = [], ""
    for paragraph in paragraphs:
        for piece in _cut(paragraph, budget):
            if current and len(current) + 2 + len(piece) > budget:
                chunks.append(prefix + current)
                current = piece
            else:
                current = f"{current}\n\n{piece}" if current else piece
    if current:
        chunks.append(prefix + current)
    return chunks


def chunk_messages(messages: list[dict], max_chars: int) -> list[Chunk]:
    whole = embedding_text(messages)
    if len(whole) <= max_chars:
        return [Chunk(0, None, whole)]
    out: list[Chunk] = []
    for message in messages:
        if message["role"] == "system" or not (message.get("content") or "").strip():
            continue
        for heading, body in _sections(message["content"]):
            prefix = f"{message['role']}: " + (f"{heading}\n" if heading else "")
            paragraphs = [p.strip() for p in re.split(r"\n\s*\n", body) if p.strip()] or [""]
            for text in _pack(prefix, paragraphs, max_chars):
                out.append(Chunk(len(out), heading, text))
    return out or [Chunk(0, None, whole[:max_chars])]
