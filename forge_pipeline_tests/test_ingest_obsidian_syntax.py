"""Every Obsidian syntax construct, one row each: the note body as written and the clean text the model reads."""

import pytest

from forge_pipeline.ingest.obsidian import clean_body, extract_tags

CASES = [
    ("wikilink", "See [[Postgres locks]] first.", "See Postgres locks first."),
    ("wikilink alias", "See [[Postgres locks|the lock notes]].", "See the lock notes."),
    ("heading link", "See [[Postgres locks#Advisory locks]].", "See Postgres locks."),
    ("block link", "See [[Postgres locks#^b15695]].", "See Postgres locks."),
    ("same-note heading link", "As in [[#Why it matters]] above.", "As in Why it matters above."),
    ("same-note block link", "As said [[#^b15695]].", "As said ."),
    ("alias in a table", "| [[Note\\|alias]] | x |", "| alias | x |"),
    ("block id", "A paragraph worth linking. ^b15695", "A paragraph worth linking."),
    ("block id on its own line", "- item one\n- item two\n\n^list-id", "- item one\n- item two"),
    ("note embed", "Before ![[Other note]] after.", "Before  after."),
    ("heading embed", "![[Other note#Section]]\nText.", "Text."),
    ("block embed", "![[Other note#^abc123]]\nText.", "Text."),
    ("image embed", "![[diagram.png|300]]\nText.", "Text."),
    (
        "inline code untouched",
        "For example, `[[link]] ==hl== #tag %%x%%`.",
        "For example, `[[link]] ==hl== #tag %%x%%`.",
    ),
    ("double-backtick code", "Use ``a ` b [[x]]`` here.", "Use ``a ` b [[x]]`` here."),
    (
        "fenced code untouched",
        "```md\n# not a heading\n[[link]] ==x== %%c%%\n```",
        "```md\n# not a heading\n[[link]] ==x== %%c%%\n```",
    ),
    ("inline math", "Energy $E = mc^2 == x$ holds.", "Energy $E = mc^2 == x$ holds."),
    (
        "dollar amounts are not math",
        "Paid $5 for [[Lunch]] and $6 for ==coffee==.",
        "Paid $5 for Lunch and $6 for coffee.",
    ),
    ("display math", "$$\n\\sum_{i} x_i ==y [[z]]\n$$", "$$\n\\sum_{i} x_i ==y [[z]]\n$$"),
    ("footnote reference and definition", "A claim.[^1]\n\n[^1]: The source.", "A claim.\n\nThe source."),
    ("inline footnote", "A claim.^[Said by Jonas.]", "A claim. (Said by Jonas.)"),
    ("comment", "Kept %%private scratch%% text.", "Kept  text."),
    ("multi-line comment", "Kept\n%%\nprivate\n%%\ntext.", "Kept\n\ntext."),
    ("highlight", "It is ==really== simple.", "It is really simple."),
    (
        "callout with title",
        "> [!tip] Use [[Postgres locks|locks]] ==wisely==\n> Body text.",
        "Use locks wisely\nBody text.",
    ),
    ("folded callout", "> [!faq]- Why?\n> Because.", "Why?\nBecause."),
    ("open callout", "> [!note]+ Open\n> Shown.", "Open\nShown."),
    ("callout without title", "> [!warning]\n> Careful.", "Warning\nCareful."),
    (
        "tasks",
        "- [ ] open\n- [x] done\n- [-] dropped\n- [/] started",
        "- TODO: open\n- DONE: done\n- CANCELLED: dropped\n- IN PROGRESS: started",
    ),
    ("table", "| a | b |\n|---|---|\n| 1 | 2 |", "| a | b |\n|---|---|\n| 1 | 2 |"),
    ("dataview field line", "mood:: calm\nText.", "mood: calm\nText."),
    ("dataview inline fields", "Slept [hours:: 7] and felt (mood:: fine).", "Slept hours: 7 and felt mood: fine."),
    ("tag-only line", "Text.\n#journal #work", "Text."),
    ("inline tag kept in a sentence", "Worked on #ingestion today.", "Worked on #ingestion today."),
]


@pytest.mark.parametrize(("body", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_clean_text_of_each_obsidian_construct(body, expected):
    assert clean_body(body) == expected


def test_heading_links_code_and_math_give_no_tags():
    body = "See [[#Heading]] and [[Note#Other]].\n`#not-a-tag` and $#x$ too.\nReal #tag."
    assert extract_tags({}, body) == ["tag"]


def test_a_link_into_a_folder_reads_as_the_notes_name():
    from forge_pipeline.ingest.obsidian import clean_body

    assert clean_body("MAAS implements the [[Notes/MAAS]] concept.") == "MAAS implements the MAAS concept."
    assert clean_body("See ![diagram](latch.png) and <u>this</u>.") == "See  and this."
