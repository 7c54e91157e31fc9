"""What the vault itself says about names: which are people, which are concepts.

A vault marks its people: notes in a people folder (`People/Maren Olsen.md`, `scrub.person_folders`), notes
whose frontmatter `type`/`category`/`kind` or tags say person (`scrub.person_types`), `people/<name>` tags,
frontmatter person fields (`attendees: [...]`, ingest's `known_names`) and links into person notes (their
targets and aliases). Every such name is replaced everywhere, in any letter case, first or last name alone.

Everything else the vault names is a concept: note titles and aliases, headings, link targets, tags and
folder names, and (from the examples' own text) words inside inline or fenced code. The NER
labels many of them PERSON on real vaults ("Docker", "Kafka", "Zettelkasten", "Filters", a heading
"Synonyms"); a concept is never replaced unless the vault also marks it as a person.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import PurePosixPath

import polars as pl

from forge_pipeline.prepare.config import ScrubSettings

_WORD_RE = re.compile(r"[^\W\d_][\w'’.-]*[^\W_]|[^\W\d_]")
_HANDLE_TITLE = re.compile(r"@([\w.]+)\b")
_LINK_RE = re.compile(r"\[\[([^\]|#^]*)(?:[#^][^\]|]*)?(?:\|([^\]]*))?\]\]")


def normalise_concept(value: str) -> str:
    """ "Docker-Compose", "docker_compose", "Docker  Compose's" -> "docker compose" (how concepts and name values
    are compared)."""
    value = re.sub(r"['’]s\b|['’]$", "", value.replace("-", " ").replace("_", " "))
    return " ".join(re.sub(r"[^\w\s.+#]", " ", value).split()).casefold()


@dataclass
class VaultMarkers:
    """Person names and concepts of one vault (raw values: in memory only)."""

    persons: list[str] = field(default_factory=list, repr=False)  # names as written (the scrub splits them)
    concepts: dict[str, str] = field(default_factory=dict, repr=False)  # normalise_concept(value) -> its source

    def add_concept(self, value: str, source: str) -> None:
        key = normalise_concept(value)
        if key and any(c.isalpha() for c in key):
            self.concepts.setdefault(key, source)
            # a tag or file name "docker-compose" also names its parts ("docker"), a title "Docker Compose" too
            if source in {"tag", "folder"}:
                for part in key.split():
                    if len(part) >= 3:
                        self.concepts.setdefault(part, source)


# Notes in a people folder that are about the folder, not a person ("People/Index.md", "Contacts/Template.md").
_NOT_A_PERSON_NOTE = {
    "index",
    "readme",
    "people",
    "persons",
    "person",
    "contacts",
    "contact",
    "template",
    "templates",
    "moc",
    "overview",
    "home",
    "list",
    "todo",
    "untitled",
}


def _frontmatter(raw: str | None) -> dict:
    try:
        front = json.loads(raw or "{}")
    except ValueError:
        return {}
    return front if isinstance(front, dict) else {}


def _strings(value) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        return [str(v) for v in value if isinstance(v, str | int | float)]
    return []


def _is_person_note(path: str, front: dict, tags: list[str], scrub: ScrubSettings) -> bool:
    folders = {p.casefold() for p in PurePosixPath(path).parts[:-1]}
    if folders & {f.casefold() for f in scrub.person_folders}:
        return True
    types = {t.casefold() for t in scrub.person_types}
    for key in ("type", "category", "kind", "class", "is"):
        if any(v.strip().strip("[]").casefold() in types for v in _strings(front.get(key))):
            return True
    folded = {t.casefold() for t in tags}
    for tag in folded:
        parent, _, leaf = tag.rpartition("/")
        if tag in types or leaf in types:
            # a note that also holds two or more sibling tags (`node/topic/person`, `node/topic/book`,
            # `node/topic/place`) documents the tag scheme: it is about tags, not a person
            siblings = [t for t in folded if parent and t != tag and t.rpartition("/")[0] == parent]
            if len(siblings) < TAG_FAMILY_SIBLINGS:
                return True
    return False


TAG_FAMILY_SIBLINGS = 2


def vault_markers(notes: pl.DataFrame | None, scrub: ScrubSettings) -> VaultMarkers:
    """Person names and concepts from the vault's notes table (ingest's vault_notes: path, title, frontmatter,
    tags, links, headings). None or an empty table gives empty markers (conversations only)."""
    markers = VaultMarkers()
    if notes is None or not notes.height:
        return markers
    rows = notes.select("path", "title", "frontmatter", "tags", "links", "headings").to_dicts()
    person_titles: set[str] = set()
    for row in rows:
        front = _frontmatter(row["frontmatter"])
        aliases = _strings(front.get("aliases", front.get("alias")))
        stem = PurePosixPath(row["path"]).stem
        names = [n for n in dict.fromkeys([row["title"] or "", stem, *aliases]) if n.strip()]
        is_index = normalise_concept(stem) in _NOT_A_PERSON_NOTE or stem.startswith("_")
        if not is_index and _is_person_note(row["path"], front, list(row["tags"] or []), scrub):
            # a note on someone's account ("@visakanv on Twitter") names the handle, not the service
            names = [m.group(1) if (m := _HANDLE_TITLE.match(n.strip())) else n for n in names]
            markers.persons.extend(names)
            person_titles |= {normalise_concept(n) for n in names}
        else:
            for name in names:
                markers.add_concept(name, "note title")
        for folder in PurePosixPath(row["path"]).parts[:-1]:
            markers.add_concept(folder, "folder")
        for heading in row["headings"] or []:
            markers.add_concept(heading, "heading")
        for tag in row["tags"] or []:
            for part in tag.split("/"):
                markers.add_concept(part, "tag")
    for row in rows:
        for link in row["links"] or []:
            target = link.rsplit("/", 1)[-1]
            if normalise_concept(target) in person_titles:
                continue  # a link into a person note: that note's names are already persons
            markers.add_concept(target, "link target")
        # the aliases a link gives a person note ("[[People/Ilse Berg|Ilse]]") are read from the raw text by
        # ingest only; the person note's own aliases and title are known above
    for person in markers.persons:
        markers.concepts.pop(normalise_concept(person), None)
    markers.persons = list(dict.fromkeys(markers.persons))
    return markers


def text_concepts(texts: list[str], markers: VaultMarkers, code_regions) -> None:
    """Add the words written inside code (inline or fenced) anywhere in `texts`: a word a person writes as
    `docker run` is a tool, not a person. (URLs are not read: a personal site's host is often its owner's
    name; a URL itself is never replaced, see spans.fit_to_structure.)"""
    for text in texts:
        if not text:
            continue
        if "`" in text or "~~~" in text or "$" in text:
            for start, end in code_regions(text):
                for word in _WORD_RE.findall(text[start:end]):
                    if len(word) >= 3:
                        markers.add_concept(word, "code")
