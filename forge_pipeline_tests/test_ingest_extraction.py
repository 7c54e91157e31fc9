"""Extraction strategies (ingest.extraction): sections and journal entries from untagged vaults, the
reflection-tag rules, and include/exclude selectors."""

import json

import pytest

from forge_pipeline.ingest.config import IngestSettings
from forge_pipeline.ingest.conversations import conversations_frame
from forge_pipeline.ingest.examples import build_training_examples
from forge_pipeline.ingest.vault import read_vault

PROSE = (
    "I keep coming back to this because the first attempt failed for reasons nobody wrote down, and the "
    "second attempt only worked because we measured before changing anything at all."
)


def _write(root, rel, text):
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")


def _examples(settings, vault, **ingest):
    settings = settings.model_copy(update={"vault_dir": vault, "ingest": settings.ingest.model_copy(update=ingest)})
    notes, _ = read_vault(vault, settings.ingest)
    counts: dict = {}
    examples, quarantine = build_training_examples(notes, conversations_frame([]), settings, counts)
    pairs = {
        (row["source_path"], row["messages"][1]["content"]): row["messages"][2]["content"]
        for row in examples.iter_rows(named=True)
    }
    return pairs, counts, quarantine


@pytest.fixture
def untagged_vault(tmp_path):
    vault = tmp_path / "vault"
    _write(
        vault,
        "Projects/Postgres locks.md",
        f"---\naliases: [Locking notes]\n---\n# Postgres locks\n\n{PROSE}\n\n## Advisory locks\n\n{PROSE}\n\n"
        f"### Pitfalls\n\n{PROSE}\n\n## Stub\n\nToo short.\n",
    )
    _write(
        vault,
        "Releases/1.11.1.md",
        f"# 1.11.1\n\n## Improvements\n\n{PROSE}\n\n## 2025-03-24\n\nShipped on a Monday. {PROSE}\n",
    )
    _write(vault, "Journal/2026-03-02.md", f"# Monday, March 2\n\nBack at my desk after the long weekend. {PROSE}\n")
    _write(vault, "Journal/2026_03_04.md", f"## The offsite\n\n{PROSE}\n")
    _write(vault, "Reference/Shortcuts.md", "| Key | Action |\n|---|---|\n" + "| Ctrl-P | palette |\n" * 30)
    return vault


def test_default_extraction_gives_sections_and_journal_entries_from_an_untagged_vault(settings, untagged_vault):
    pairs, counts, quarantine = _examples(settings, untagged_vault)
    assert counts == {"sections": 5, "journal": 2}
    assert pairs[("Projects/Postgres locks.md", "What do you know about Postgres locks?")] == PROSE
    assert pairs[("Projects/Postgres locks.md", "Explain Advisory locks in Postgres locks.")] == PROSE
    assert pairs[("Projects/Postgres locks.md", "Tell me about Pitfalls in Postgres locks.")] == PROSE
    # a version-titled note keeps its version next to its folder; a date heading names nothing
    assert pairs[("Releases/1.11.1.md", "Explain Improvements in Releases 1.11.1.")] == PROSE
    assert pairs[("Releases/1.11.1.md", "Tell me about Releases 1.11.1.")] == f"Shipped on a Monday. {PROSE}"
    # Journal: the date heading is skipped; the entry's opening sentence or its first heading is the prompt.
    assert (
        pairs[
            ("Journal/2026-03-02.md", "Back at my desk after the long weekend. How did it go, and what's on your mind?")
        ]
        == PROSE
    )
    assert pairs[("Journal/2026_03_04.md", "Tell me about your day: The offsite.")] == PROSE
    for _, prompt in pairs:
        assert "2026" not in prompt and "2025" not in prompt  # dates never; the version names its release
    # A note that is only a lookup table (two-word cells) has no prose section: kept in quarantine with the reason.
    assert [(r["file"], r["reason"]) for r in quarantine.rows] == [("Reference/Shortcuts.md", "no_long_section")]


def test_section_prompts_from_question_headings_bold_labels_and_emphasis(settings, tmp_path):
    vault = tmp_path / "vault"
    _write(
        vault,
        "Projects/Storage.md",
        f"## Why not SQLite?\n\n{PROSE}\n\n## The ==hot== path\n\n{PROSE}\n\n## Later\n\n**Costs:**\n{PROSE}\n",
    )
    _write(vault, "Release notes/Mobile/v1.4.1.md", f"**Core update**\n{PROSE}\n")
    _write(
        vault,
        "Release notes/Mobile/v1.0.2.md",
        f"- Includes **all** fixes of [v0.12.10](https://example.org/v0.12.10). {PROSE}\n",
    )
    _write(vault, "Release notes/Mobile/v0.0.1.md", f"<small>Released May 23, 2023</small>\nFirst beta. {PROSE}\n")
    pairs, counts, _ = _examples(settings, vault)
    assert counts == {"sections": 6}
    assert pairs == {
        ("Projects/Storage.md", "About Storage: Why not SQLite?"): PROSE,  # the person's own question, no "??"
        ("Projects/Storage.md", "Tell me about The hot path in Storage."): PROSE,
        # a bold line opening a section is its heading only when no real heading names the section
        ("Projects/Storage.md", "What do you know about Later in Storage?"): f"**Costs:**\n{PROSE}",
        ("Release notes/Mobile/v1.4.1.md", "Tell me about Core update in Release notes / Mobile."): PROSE,
        # no heading and no title: the opening sentence, without its list marker and emphasis
        ("Release notes/Mobile/v1.0.2.md", "Includes all fixes of v0.12.10. Tell me more."): PROSE,
        # an opening that is only a date ("Released on <date>") is no prompt: it stays at the head of the reply
        (
            "Release notes/Mobile/v0.0.1.md",
            "I keep coming back to this because the first attempt failed for reasons nobody wrote down, and "
            "the second attempt only worked because we measured before changing anything at all. Tell me more.",
        ): "Released May 23, 2023\nFirst beta.",  # formatting HTML goes, its words stay
    }


def test_strategy_order_and_choice(settings, untagged_vault):
    _write(untagged_vault, "Journal/2026-03-05.md", f"---\ntags: [journal]\ncreated: 2026-03-05\n---\n{PROSE}\n")
    _write(untagged_vault, "Log/2026-03-06.md", f"---\ntags: [reflection]\n---\nA short day. {PROSE}\n")
    pairs, counts, _ = _examples(settings, untagged_vault, extraction=["reflection_tags"])
    assert counts == {"reflection_tags": 2}  # today's behaviour: untagged notes give nothing
    assert pairs == {
        ("Journal/2026-03-05.md", "How did Thursday, March 5, 2026 go? What's on your mind?"): PROSE,
        # a reflection note titled by a date: the prompt is its opening, not "thoughts on 2026-03-06"
        ("Log/2026-03-06.md", "A short day. Tell me more."): PROSE,
    }
    _, counts, quarantine = _examples(settings, untagged_vault, extraction=["journal", "reflection_tags"])
    assert counts == {"journal": 3}  # the first strategy that applies claims the note
    # 2026-03-05 is one sentence: it becomes the prompt and leaves no reply.
    assert [(r["file"], r["reason"]) for r in quarantine.rows] == [("Journal/2026-03-05.md", "empty_reply")]
    _, counts, _ = _examples(settings, untagged_vault, extraction=["sections"])
    assert counts == {"sections": 8}  # one per section; the one-sentence 2026-03-05 leaves no reply


def test_include_and_exclude_by_folder_tag_and_frontmatter(settings, untagged_vault):
    _write(untagged_vault, "Projects/Private.md", f"---\ntags: [private]\n---\n{PROSE}\n")
    _write(untagged_vault, "Projects/Draft.md", f"---\npublish: false\n---\n{PROSE}\n")
    pairs, counts, _ = _examples(
        settings, untagged_vault, include=["folder:Projects"], exclude=["tag:private", "frontmatter:publish=false"]
    )
    assert {path for path, _ in pairs} == {"Projects/Postgres locks.md"}
    assert counts["excluded"] == 6  # 3 notes outside Projects, 1 private, 1 draft, 1 table-only reference
    pairs, _, _ = _examples(settings, untagged_vault, include=["tag:private"])
    assert {path for path, _ in pairs} == {"Projects/Private.md"}


def test_a_bad_selector_names_the_field_and_the_forms():
    with pytest.raises(ValueError, match=r"selector 'Journal' must be 'folder:<path>', 'tag:<tag>'"):
        IngestSettings(exclude=["Journal"])
    with pytest.raises(ValueError, match="extraction"):
        IngestSettings(extraction=["headings"])


def test_first_h1_is_dropped_only_when_it_names_the_note(settings, tmp_path):
    vault = tmp_path / "v"
    _write(vault, "Titled.md", f"# Titled\n\n{PROSE}\n")
    _write(vault, "Aliased.md", f"---\naliases: [Other name]\n---\n# Other name\n\n{PROSE}\n")
    _write(vault, "Untitled.md", f"---\ntags: [reflection]\n---\n# A claim worth keeping\n\n{PROSE}\n")
    pairs, _, _ = _examples(settings, vault)
    assert pairs[("Titled.md", "Tell me about Titled.")] == PROSE
    assert pairs[("Aliased.md", "What do you know about Aliased?")] == PROSE
    reply = next(v for (path, _), v in pairs.items() if path == "Untitled.md")
    assert reply == f"# A claim worth keeping\n\n{PROSE}"
    assert json.dumps(list(pairs))  # prompts are plain strings


def test_language_is_detected_once_per_note_and_carried_by_its_examples(settings, tmp_path):
    vault = tmp_path / "v"
    _write(vault, "English.md", f"# English\n\n{PROSE}\n")
    _write(
        vault,
        "Deutsch.md",
        "# Deutsch\n\nIch habe heute lange über die Migration nachgedacht, und ich glaube, "
        "dass wir zuerst messen müssen, bevor wir irgendetwas an der Datenbank ändern.\n",
    )
    _write(vault, "Short.md", "# Short\n\nOk.\n")
    # Vietnamese around English technical terms: langdetect alone calls it English
    _write(
        vault,
        "Kubernetes.md",
        "# Kubernetes\n\n- Quản lý container cluster\n- Tạo Deployment file YAML\n- kubectl get pods: xem Pod\n"
        "- Helm chart: deploy release, rollback\n- Dùng Ingress controller\n- Đọc log: kubectl logs\n",
    )
    notes, _ = read_vault(vault, settings.ingest)
    assert dict(zip(notes["path"], notes["language"], strict=True)) == {
        "Deutsch.md": "de",
        "English.md": "en",
        "Kubernetes.md": "vi",
        "Short.md": None,
    }
    examples, _ = build_training_examples(
        notes,
        conversations_frame([]),
        settings.model_copy(update={"ingest": settings.ingest.model_copy(update={"min_section_words": 1})}),
    )
    assert dict(zip(examples["source_path"], examples["language"], strict=True)) == {
        "Deutsch.md": "de",
        "English.md": "en",
        "Kubernetes.md": "vi",
        "Short.md": None,
    }
