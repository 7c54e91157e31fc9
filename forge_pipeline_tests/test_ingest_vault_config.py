"""The vault's own `.obsidian/` settings: templates folder skipped, daily-notes format read by the journal
strategy, flashcard tags and separators, dot-folders skipped, broken settings files never fatal."""

import json

from forge_pipeline.ingest.conversations import conversations_frame
from forge_pipeline.ingest.examples import build_training_examples
from forge_pipeline.ingest.vault import VaultReadStats, read_vault
from forge_pipeline.ingest.vault_config import daily_note_matcher, moment_regex, read_vault_config

DAY = (
    "Slow start, then a good afternoon: I finally wrote the migration plan down and sent it to the team "
    "before the standup, which made the rest of the week feel lighter than it has in a while."
)


def _write(root, rel, text):
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")


def _vault(tmp_path, config: dict[str, object]):
    vault = tmp_path / "vault"
    for rel, value in config.items():
        _write(vault / ".obsidian", rel, value if isinstance(value, str) else json.dumps(value))
    return vault


def test_templates_folders_from_core_templates_and_templater_are_not_content(settings, tmp_path):
    vault = _vault(
        tmp_path,
        {
            "templates.json": {"folder": "Meta/Templates"},
            "plugins/templater-obsidian/data.json": {"templates_folder": "Templater/"},
        },
    )
    _write(vault, "Meta/Templates/Daily.md", "# {{date}}\n\n## Log\n\n- \n")
    _write(vault, "Templater/Book.md", "# <% tp.file.title %>\n\n<% tp.file.cursor() %>\n")
    _write(vault, "Meta/Ideas.md", f"# Ideas\n\n{DAY}\n")
    _write(vault, ".quartz/docs/index.md", f"# Site docs\n\n{DAY}\n")  # a dot-folder is a tool's, not a note
    stats = VaultReadStats()
    notes, quarantine = read_vault(vault, settings.ingest, stats=stats)
    assert notes["path"].to_list() == ["Meta/Ideas.md"]
    assert sorted((r["file"], r["reason"]) for r in quarantine.rows) == [
        ("Meta/Templates/Daily.md", "template"),
        ("Templater/Book.md", "template"),
    ]
    assert stats.templates_skipped == 2
    assert stats.config.template_folders == ["Meta/Templates", "Templater"]


def test_broken_or_missing_settings_give_defaults_and_say_which_file(tmp_path):
    vault = _vault(
        tmp_path,
        {
            "templates.json": "{not json",
            "daily-notes.json": {"folder": 3, "format": "DD-MM-YYYY"},
            "plugins/obsidian-spaced-repetition/data.json": ["not", "an", "object"],
        },
    )
    config = read_vault_config(vault)
    assert config.template_folders == []
    assert config.daily_format == "DD-MM-YYYY" and config.daily_folder == ""
    assert config.flashcards.tags == ["flashcards"] and config.flashcards.single == "::"
    joined = "\n".join(config.problems)
    assert ".obsidian/templates.json: cannot be read" in joined
    assert ".obsidian/daily-notes.json: 'folder' should be text" in joined
    assert "obsidian-spaced-repetition/data.json: expected a JSON object" in joined
    assert read_vault_config(tmp_path / "no-such-vault").summary()["daily_format"] == "YYYY-MM-DD"


def test_moment_formats_match_the_names_they_write():
    assert moment_regex("DD-MM-YYYY - dddd").fullmatch("24-03-2025 - Monday")
    assert not moment_regex("DD-MM-YYYY - dddd").fullmatch("Marketing plan")
    assert moment_regex("YYYY-MM-DD").fullmatch("2025-03-24")
    assert moment_regex("[Week] ww, gggg").fullmatch("Week 12, 2025")
    assert moment_regex("Do MMMM YYYY").fullmatch("1st March 2025")


def test_daily_notes_in_the_vaults_own_format_are_journal_entries(settings, tmp_path):
    vault = _vault(tmp_path, {"daily-notes.json": {"folder": "Daily", "format": "DD-MM-YYYY - dddd"}})
    _write(vault, "Daily/24-03-2025 - Monday.md", f"{DAY}\n\nThen more of the same, honestly, all afternoon.\n")
    _write(vault, "Projects/Marketing plan.md", f"# Marketing plan\n\n{DAY}\n")
    stats = VaultReadStats()
    notes, _ = read_vault(vault, settings.ingest, stats=stats)
    counts: dict = {}
    examples, _ = build_training_examples(notes, conversations_frame([]), settings, counts, stats.config)
    assert counts == {"journal": 1, "sections": 1}
    by_path = {r["source_path"]: r["messages"][1]["content"] for r in examples.iter_rows(named=True)}
    assert "Monday" not in by_path["Daily/24-03-2025 - Monday.md"]
    # without the vault's settings the same note is not recognised as a daily note
    counts = {}
    build_training_examples(notes, conversations_frame([]), settings, counts)
    assert counts == {"sections": 2}


def test_daily_format_with_folders_matches_paths_under_the_daily_folder(tmp_path):
    vault = _vault(tmp_path, {"plugins/periodic-notes/data.json": {"daily": {"folder": "J", "format": "YYYY/MM/DD"}}})
    is_daily = daily_note_matcher(read_vault_config(vault))
    assert is_daily("J/2025/03/24.md")
    assert not is_daily("Notes/2025/03/24.md") and not is_daily("J/Ideas.md")


def test_flashcard_notes_keep_their_card_lines_and_others_read_fields(settings, tmp_path):
    vault = _vault(tmp_path, {"plugins/obsidian-spaced-repetition/data.json": {"flashcardTags": ["#srs"]}})
    _write(vault, "Cards.md", "#srs/spanish\n\nCapital of Peru::Lima\n")
    _write(vault, "Fields.md", "Status:: draft\n")
    notes, _ = read_vault(vault, settings.ingest)
    bodies = dict(zip(notes["path"], notes["body"], strict=True))
    assert bodies == {"Cards.md": "Capital of Peru::Lima", "Fields.md": "Status: draft"}


def test_excalidraw_drawings_are_plugin_data_not_notes(settings, tmp_path):
    vault = _vault(tmp_path, {})
    _write(
        vault,
        "Excalidraw/Drawing 2025-02-05.excalidraw.md",
        "---\nexcalidraw-plugin: parsed\n---\n# Text Elements\nIncus\n",
    )
    _write(vault, "Sketch.md", "---\nexcalidraw-plugin: parsed\n---\n# Drawing\n```json\n{}\n```\n")
    notes, quarantine = read_vault(vault, settings.ingest)
    assert notes.height == 0
    assert sorted((r["file"], r["reason"]) for r in quarantine.rows) == [
        ("Excalidraw/Drawing 2025-02-05.excalidraw.md", "plugin_file"),
        ("Sketch.md", "plugin_file"),
    ]
