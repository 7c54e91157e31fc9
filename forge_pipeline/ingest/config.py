from pydantic import Field

from forge_pipeline.section import Section


class IngestSettings(Section):
    """How notes and conversations are read."""

    reflection_tags: list[str] = Field(
        default=["reflection", "decision", "learning", "journal"],
        description="Notes carrying one of these tags (or a nested child such as reflection/work) become training examples.",
    )
    ignored_dirs: list[str] = Field(default=[".obsidian", ".trash", "attachments", ".git"])
    max_note_bytes: int = Field(default=2_000_000, gt=0, description="Larger notes are quarantined, not parsed.")
    max_jsonl_line_bytes: int = Field(default=5_000_000, gt=0)
    max_folder_depth: int = Field(default=32, gt=0, description="Deeper folders are quarantined (symlink-loop guard).")
    system_prompt: str = Field(
        default="You are the user's personal assistant. Answer in their own voice, drawing on their notes and reflections.",
    )
