from typing import Literal

from pydantic import Field, field_validator

from forge_pipeline.section import Section

Strategy = Literal["reflection_tags", "journal", "sections"]
_SELECTOR_KINDS = ("folder", "tag", "frontmatter")


class IngestSettings(Section):
    """How notes and conversations are read."""

    extraction: list[Strategy] = Field(
        default=["reflection_tags", "journal", "sections"],
        min_length=1,
        description="How notes become training examples, tried in this order for each note; the first strategy "
        "that applies claims the note. reflection_tags: one example per note carrying a reflection "
        "tag. journal: date-named notes, the prompt taken from the entry's opening. sections: one "
        "example per heading section of any note, the prompt from the note title and heading path.",
    )
    reflection_tags: list[str] = Field(
        default=["reflection", "decision", "learning", "journal"],
        description="Notes carrying one of these tags (or a nested child such as reflection/work) are claimed by "
        "the reflection_tags strategy.",
    )
    include: list[str] = Field(
        default=[],
        description="When set, only notes matching one of these selectors become examples: "
        "'folder:Journal', 'tag:reflection', 'frontmatter:publish=true' (or 'frontmatter:key').",
    )
    exclude: list[str] = Field(
        default=[], description="Notes matching any of these selectors never become examples (same forms as include)."
    )
    min_section_words: int = Field(
        default=25, ge=1, description="sections strategy: shorter sections are skipped (headings, stubs)."
    )
    boilerplate_min_notes: int = Field(
        default=5,
        ge=2,
        description="A block whose every line appears in at least this many notes (and in "
        "boilerplate_min_share of them) is template furniture and is removed before examples are made.",
    )
    boilerplate_min_share: float = Field(
        default=0.02, ge=0.0, le=1.0, description="Share of the vault's notes a line must appear in to be boilerplate."
    )
    ignored_dirs: list[str] = Field(default=[".obsidian", ".trash", "attachments", ".git"])
    max_note_bytes: int = Field(default=2_000_000, gt=0, description="Larger notes are quarantined, not parsed.")
    max_jsonl_line_bytes: int = Field(default=5_000_000, gt=0)
    max_folder_depth: int = Field(default=32, gt=0, description="Deeper folders are quarantined (symlink-loop guard).")
    system_prompt: str = Field(
        default="You are the user's personal assistant. Answer in their own voice, drawing on their notes and reflections.",
    )

    @field_validator("include", "exclude")
    @classmethod
    def _selectors(cls, values: list[str]) -> list[str]:
        for value in values:
            kind, sep, rest = value.partition(":")
            if not sep or kind not in _SELECTOR_KINDS or not rest.strip():
                raise ValueError(
                    f"selector {value!r} must be 'folder:<path>', 'tag:<tag>' or 'frontmatter:<key>[=<value>]'"
                )
        return values
