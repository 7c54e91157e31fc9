"""Template furniture removed across notes: repeated blocks, header blocks, navigation, rules; code, headings
and a repeated line inside the person's own steps stay; what goes is quarantined and counted."""

from forge_pipeline.ingest.boilerplate import BoilerplateReport, repeated_lines, strip_boilerplate
from forge_pipeline.ingest.conversations import conversations_frame
from forge_pipeline.ingest.examples import build_training_examples
from forge_pipeline.ingest.vault import notes_frame

BOOKS = ["Deep Work", "Atomic Habits", "The Mom Test", "Range", "Four Thousand Weeks", "Thinking in Systems"]
THOUGHTS = [
    "Focus is a skill you train, and I only noticed it once I blocked my mornings for a month without meetings.",
    "Small changes compound; the cue matters more than willpower, which surprised me after years of streaks.",
    "Ask about their past behaviour, never about the future; compliments are noise, commitments are signal.",
    "Generalists win in wicked domains where feedback is slow, which describes most of my actual job now.",
    "Finitude is the point: choosing what to neglect is the real work, and I keep relearning that each quarter.",
    "Stocks and flows explain why our backlog never shrinks even when we close more tickets than we open.",
]


def _note(path: str, body: str) -> dict:
    return {
        "path": path,
        "title": path.rsplit("/", 1)[-1].removesuffix(".md"),
        "frontmatter": "{}",
        "tags": [],
        "links": [],
        "headings": [],
        "created": "2026-01-05T09:00:00+00:00",
        "modified": "2026-01-05T09:00:00+00:00",
        "body": body,
        "content_hash": path,
        "language": "en",
    }


def _book(title: str, thought: str, index: int) -> str:
    # a reading-notes template: header block, separator, filler, navigation, then the person's text
    return (
        f"Tags:\n- Reading\n- Book {index}\n---\n–Notes–\n\n[Book Link]()\n\n## Takeaways\n\n{thought}\n\n"
        "1. Open the book at the index.\n2. Skim chapter "
        f"{index} first.\n\n```python\n# --- same in every note ---\nprint('hi')\n```\n\n- \n\n<< Yesterday | Tomorrow >>\n"
    )


def test_repeated_template_lines_go_and_the_persons_text_stays():
    bodies = [_book(t, th, i) for i, (t, th) in enumerate(zip(BOOKS, THOUGHTS, strict=True))]
    repeated = repeated_lines(bodies, min_notes=5, min_share=0.02)
    report = BoilerplateReport()
    cleaned = strip_boilerplate(bodies[0], repeated, "Books/Deep Work.md", report)
    assert cleaned == (
        f"## Takeaways\n\n{THOUGHTS[0]}\n\n1. Open the book at the index.\n2. Skim chapter 0 first.\n\n"
        "```python\n# --- same in every note ---\nprint('hi')\n```"
    )
    assert report.counts == {"header_block": 1, "boilerplate": 2, "navigation": 1, "rule": 1, "empty_item": 1}


def test_below_the_threshold_nothing_repeated_is_removed():
    bodies = [_book(t, th, i) for i, (t, th) in enumerate(zip(BOOKS, THOUGHTS, strict=True))][:4]
    assert repeated_lines(bodies, min_notes=5, min_share=0.02) == {}
    # the share counts too: 6 notes of 100 are under 10%
    bodies6 = [_book(t, th, i) for i, (t, th) in enumerate(zip(BOOKS, THOUGHTS, strict=True))]
    assert (
        repeated_lines(bodies6 + [f"Unrelated note number {i}." for i in range(94)], min_notes=5, min_share=0.1) == {}
    )


def test_navigation_lines_from_links_between_daily_notes():
    report = BoilerplateReport()
    body = "2024-05-20 - 2024-05-22\n\n← Previous | Next →\n\nToday I moved the standup to Tuesday mornings."
    assert strip_boilerplate(body, {}, "Journal/2024-05-21.md", report) == (
        "Today I moved the standup to Tuesday mornings."
    )
    assert report.counts == {"navigation": 2}
    # a table's separator row and a sentence with dates are content
    table = "| Day | Miles |\n|---|---|\n| 2024-05-20 | 3 |"
    assert strip_boilerplate(table, {}, "x.md", BoilerplateReport()) == table


def test_build_training_examples_quarantines_boilerplate_with_counts(settings):
    notes = notes_frame(
        [_note(f"Books/{t}.md", _book(t, th, i)) for i, (t, th) in enumerate(zip(BOOKS, THOUGHTS, strict=True))]
    )
    details: dict = {}
    settings = settings.model_copy(update={"ingest": settings.ingest.model_copy(update={"min_section_words": 5})})
    examples, quarantine = build_training_examples(notes, conversations_frame([]), settings, details=details)
    replies = [row["messages"][2]["content"] for row in examples.iter_rows(named=True)]
    assert replies and not any("–Notes–" in r or "Tags:" in r or "Yesterday" in r or "\n---" in r for r in replies)
    reasons = sorted({(r["reason"], r["payload"]) for r in quarantine.rows if r["reason"] != "no_long_section"})
    assert ("boilerplate", "–Notes–") in reasons and ("header_block", "Tags:") in reasons
    assert ("navigation", "<< Yesterday | Tomorrow >>") in reasons
    assert details["boilerplate"]["notes_changed"] == 6 and details["boilerplate"]["boilerplate"] == 12


def test_a_header_of_fields_goes_when_its_fields_repeat_but_a_block_of_pros_and_cons_stays():
    headers = [
        f"{'Recorded' if i == 2 else 'Published'}: 2023{i:02d}15\nTags: #Macro\n"
        f"[Podcast Link](https://podcasts.example/{i})\n\n{t}"
        for i, t in enumerate(THOUGHTS)
    ]
    repeated = repeated_lines([*headers, "Pros: fast\nCons: costly"] * 1, min_notes=5, min_share=0.02)
    report = BoilerplateReport()
    assert strip_boilerplate(headers[2], repeated, "Podcasts/Ep 3.md", report) == THOUGHTS[2]
    assert report.counts == {"header_block": 1}
    assert strip_boilerplate("Pros: fast\nCons: costly", repeated, "x.md", BoilerplateReport()) == (
        "Pros: fast\nCons: costly"
    )
