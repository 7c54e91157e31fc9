"""Obsidian text rules: frontmatter, tags, links, headings and the clean body the model reads."""

import pytest

from forge_pipeline.ingest.obsidian import (
    FrontmatterError,
    clean_body,
    extract_headings,
    extract_links,
    extract_tags,
    parse_note,
    split_frontmatter,
)


def test_frontmatter_is_split_from_body():
    front, body = split_frontmatter("---\ntags: [a, b]\ncreated: 2026-01-02\n---\n# Title\ntext\n")
    assert front["tags"] == ["a", "b"]
    assert str(front["created"]) == "2026-01-02"
    assert body == "# Title\ntext\n"


def test_note_without_frontmatter_keeps_all_text():
    assert split_frontmatter("# Just text\n---\nmore") == ({}, "# Just text\n---\nmore")


@pytest.mark.parametrize(
    "text, message",
    [
        (
            "---\ntags: [journal, reflection\nmood: : tired\n---\nbody",
            "invalid YAML in frontmatter at frontmatter line",
        ),
        ("---\ntags: [learning]\nbody without end\n", "never closed"),
        ("---\n- a\n- b\n---\nbody", "expected a mapping"),
    ],
)
def test_broken_frontmatter_raises_a_clear_error(text, message):
    with pytest.raises(FrontmatterError, match=message):
        split_frontmatter(text)


def test_tags_from_frontmatter_list_string_and_inline_with_nesting():
    body = "Some text #reflection/work and #idea.\n```python\n# not a heading\nx = 1  #notatag\n```\n# Heading #h\nEnd `#code` #1\n"
    assert extract_tags({"tags": ["journal"]}, body) == ["idea", "journal", "reflection", "reflection/work"]
    assert extract_tags({"tags": "a, b/c"}, "") == ["a", "b", "b/c"]


def test_links_with_alias_and_heading_but_not_embeds_or_code():
    body = "See [[Note A]] and [[Note B|bee]], [[Note C#Part]].\n![[image.png]]\n```\n[[In Code]]\n```\n[[Note A]]"
    assert extract_links(body) == ["Note A", "Note B", "Note C"]


def test_headings_skip_code_blocks():
    assert extract_headings("# One\ntext\n```bash\n# comment\n```\n## Two ##\n") == ["One", "Two"]


def test_clean_body_rules():
    body = (
        "# Title\nSee [[Note|the note]] and [[Other#Why]].\n![[diagram.png]]\n"
        "%% private\nmulti-line %%\nThis is ==important== text.\n"
        "> [!warning] Careful here\n> the callout body\n"
        "- [ ] open task\n- [x] done task\n"
        "```python\nx = [[not a link]]  # ==kept==\n```\n#reflection/work\n"
    )
    cleaned = clean_body(body)
    assert "See the note and Other." in cleaned
    assert "diagram" not in cleaned and "private" not in cleaned and "multi-line" not in cleaned
    assert "This is important text." in cleaned
    assert "Careful here\nthe callout body" in cleaned and "[!warning]" not in cleaned
    assert "- TODO: open task" in cleaned and "- DONE: done task" in cleaned
    assert "x = [[not a link]]  # ==kept==" in cleaned  # code is verbatim
    assert "#reflection/work" not in cleaned  # a tags-only line is metadata


def test_parse_note_on_sample_home(sample_data):
    note = parse_note((sample_data / "sample_vault" / "Home.md").read_text())
    assert note["tags"] == ["index"]
    assert "Decision - Switch from Notion to Obsidian" in note["links"]
    assert "why I moved here" in note["body"] and "![[" not in note["body"] and "%%" not in note["body"]
