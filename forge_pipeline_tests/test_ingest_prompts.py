"""Prompts that fit the section: topics keep their numbers, only real dates are calendar words, question
headings / flashcards / definitions are Q/A pairs, several shapes, no prompt shared by different answers,
deterministic phrasing, tables are content."""

import json

import pytest

from forge_pipeline.ingest.conversations import conversations_frame
from forge_pipeline.ingest.examples import build_training_examples, note_prompt_and_reply
from forge_pipeline.ingest.flashcards import split_cards
from forge_pipeline.ingest.obsidian import extract_headings
from forge_pipeline.ingest.prompts import classify, heading_label, topic
from forge_pipeline.ingest.vault import notes_frame
from forge_pipeline.ingest.vault_config import FlashcardSyntax, VaultConfig


def _note(path: str, body: str, tags: list[str] | None = None, front: dict | None = None) -> dict:
    return {
        "path": path,
        "title": path.rsplit("/", 1)[-1].removesuffix(".md"),
        "frontmatter": json.dumps(front or {}),
        "tags": tags or [],
        "links": [],
        "headings": extract_headings(body),
        "created": "2026-02-10T08:00:00+00:00",
        "modified": "2026-02-10T08:00:00+00:00",
        "body": body,
        "content_hash": path,
        "language": "en",
    }


def _pairs(settings, notes: list[dict], config: VaultConfig | None = None, **ingest):
    settings = settings.model_copy(
        update={"ingest": settings.ingest.model_copy(update={"min_section_words": 8, **ingest})}
    )
    details: dict = {}
    examples, quarantine = build_training_examples(
        notes_frame(notes), conversations_frame([]), settings, vault_config=config, details=details
    )
    pairs = [(r["source_path"], r["messages"][1]["content"], r["messages"][2]["content"]) for r in examples.to_dicts()]
    return pairs, details, quarantine


@pytest.mark.parametrize(
    "name",
    [
        "Chapter 1: How 80/20 works and why",
        "OAuth 2.0",
        "HTTP1.0 vs HTTP1.1",
        "System Design Interview Volume 2",
        "The 50th Law",
        "Practice 4",
        "Marketing",
        "Decision log for the Octopus deploy",
        "Augmented reality",
        "Junit",
        "Separate concerns",
        "Marked",
        "Decorators",
    ],
)
def test_topics_keep_numbers_versions_and_words_that_start_like_months(name):
    assert topic(name) == name


@pytest.mark.parametrize(
    "name", ["2025-03-24", "Monday, March 2", "Week 12", "24-03-2025 - Monday", "1.11.1", "Daily note 2026-01-05"]
)
def test_dates_and_calendar_names_are_no_topic(name):
    assert topic(name) is None


def test_a_numbered_heading_is_a_label_but_a_date_or_time_heading_is_not():
    assert heading_label("Week 1") == "Week 1" and heading_label("Day 3") == "Day 3"
    assert heading_label("09:14") is None and heading_label("Monday, March 2") is None
    assert heading_label("2025-03-24") is None


def test_a_date_titled_learning_note_is_asked_about_its_text_not_its_date():
    note = _note("Learnings/2025-03-24.md", "Pairing beats reviewing for risky changes. We caught two bugs live.")
    _, prompt, reply = note_prompt_and_reply({**note, "tags": ["learning"], "created": None})
    assert "2025-03-24" not in prompt
    assert prompt == "Pairing beats reviewing for risky changes. What did you learn?" and reply.startswith("We caught")


@pytest.mark.parametrize(
    ("subject", "text", "shape"),
    [
        ("Why not SQLite?", "Because we need concurrent writers from three services.", "question"),
        ("Postgres vs MySQL", "Postgres has better JSON support; MySQL is simpler to run.", "comparison"),
        ("Create a template", "Put the note in the templates folder and insert it.", "howto"),
        (
            "Backups",
            "1. Open Settings.\n2. Choose Backups.\n3. Enable nightly snapshots.\n4. Check the first run.",
            "howto",
        ),
        ("Chapter 3: Deep work rules", "Schedule every minute of the day.", "chapter"),
        ("Idempotence", "Idempotence is the property that repeating an operation changes nothing.", "definition"),
        ("Shopping", "- eggs\n- flour\n- coffee beans\n- oat milk", "list"),
        ("Examples", "```python\nprint(1)\n```", "example"),
        ("Summary", "The book argues focus is trainable.", "summary"),
        ("On-call", "I dread it, and my sleep is worse the week before; I should trade the Friday slot.", "reflection"),
        ("Meetings are a tax on focus", "Every meeting costs the hour around it.", "claim"),
        ("Consistent hashing", "Keys map onto a ring of virtual nodes so few move on resize.", "explain"),
    ],
)
def test_the_shape_follows_what_the_section_is(subject, text, shape):
    assert classify(subject, text, reading=False) == shape


def test_a_section_of_reading_notes_is_asked_as_a_book(settings):
    pairs, details, _ = _pairs(
        settings,
        [_note("Books/Deep Work.md", "## The attention residue\n\nSwitching tasks leaves part of the mind behind.")],
    )
    assert pairs == [
        (
            "Books/Deep Work.md",
            "What are the main ideas of The attention residue in Deep Work?",
            "Switching tasks leaves part of the mind behind.",
        )
    ]
    assert details["prompt_shapes"] == {"chapter": 1}


def test_plugin_tags_leave_question_headings_and_flashcards_become_pairs(settings):
    body = (
        "#flashcards/interview\n\n## Why did you choose software engineering? #card\n\n"
        "Because I liked building things people use every single day at work.\n\n"
        "Idempotence::Repeating the call changes nothing\nCapital of Peru:::Lima\n\n"
        "What does CAP stand for?\n?\nConsistency, availability, partition tolerance.\n\n"
        "```\nnot::a card\n```\n"
    )
    note = _note("Cards/Interview.md", body, tags=["flashcards", "flashcards/interview"])
    pairs, details, _ = _pairs(settings, [note], VaultConfig())
    prompts = {p: r for _, p, r in pairs}
    assert prompts["What is Idempotence?"] == "Repeating the call changes nothing"
    assert prompts["What is Capital of Peru?"] == "Lima"
    assert prompts["What does CAP stand for?"] == "Consistency, availability, partition tolerance."
    assert prompts["About Interview: Why did you choose software engineering?"].startswith("Because I liked")
    assert not any("#card" in p or "#flashcards" in p for p in prompts)
    assert details["prompt_shapes"]["flashcard"] == 3


def test_cards_are_only_read_outside_code_and_with_both_sides():
    cards, rest = split_cards("a::b\n\n```\nx::y\n```\n\nonly a question\n?\n", FlashcardSyntax())
    assert cards == [("What is a?", "b")]
    assert "x::y" in rest and "only a question" in rest


def test_no_two_different_answers_share_a_prompt(settings):
    volume = "## Chapter 1: Scale from zero to millions\n\nStart with one server, then split the database out."
    notes = [
        _note("Books/System Design Interview Volume 1.md", volume),
        _note("Books/System Design Interview Volume 2.md", volume.replace("one server", "a proximity service")),
        # the same note name in two folders, same heading
        _note("Work/Acme/Retro.md", "## What went well\n\nThe migration shipped a week early with no incidents."),
        _note("Work/Globex/Retro.md", "## What went well\n\nHiring closed two roles and onboarding was smooth."),
        # the same heading twice under different parents of one note, and twice under the same parent
        _note(
            "Notes/Obsidian URI.md",
            "## Open note\n\n### Examples\n\nobsidian://open?vault=work opens the vault called work in a new window.\n\n"
            "## Create note\n\n### Examples\n\nobsidian://new?name=x creates a note called x in the open vault.\n\n"
            "## Search\n\nThe search action runs a query.\n\nIt also accepts a vault name.\n\n## Search\n\n"
            "A second search section, written later, with more detail about flags.",
        ),
    ]
    pairs, details, quarantine = _pairs(settings, notes)
    replies_of: dict[str, set[str]] = {}
    for _, prompt, reply in pairs:
        replies_of.setdefault(prompt, set()).add(reply)
    assert all(len(replies) == 1 for replies in replies_of.values())
    prompts = sorted(replies_of)
    assert "Can you show an example of Open note in Obsidian URI?" in prompts
    assert "Can you show an example of Create note in Obsidian URI?" in prompts
    assert any("Volume 1" in p for p in prompts) and any("Volume 2" in p for p in prompts)
    assert any("(Work / Acme)" in p for p in prompts) and any("(Work / Globex)" in p for p in prompts)
    search = [r for _, p, r in pairs if "Search" in p]
    assert search == [
        "The search action runs a query.\n\nIt also accepts a vault name.\n\nA second search section, "
        "written later, with more detail about flags."
    ]  # one note, one heading: one answer
    assert details["shared_prompts"] == {"level_1": 2, "level_2": 2, "merged": 1, "dropped": 0}
    assert not [r for r in quarantine.rows if r["reason"] == "shared_prompt"]


def test_prompts_are_the_same_on_every_run_and_in_any_note_order(settings):
    topics = ["Caching", "Retries", "Backpressure", "Sharding", "Leases", "Quorums", "Gossip", "Hinted handoff"]
    notes = [
        _note(f"Notes/{name}.md", f"## In practice\n\nWhat I saw of {name.lower()} on the ingestion service last year.")
        for name in topics
    ]
    first, _, _ = _pairs(settings, notes)
    again, _, _ = _pairs(settings, list(reversed(notes)))
    assert sorted(first) == sorted(again)
    assert len({p.split(" ", 1)[0] for _, p, _ in first}) > 1  # phrasing varies between sections


def test_a_table_of_the_persons_own_stories_is_content_and_a_lookup_table_is_not(settings):
    table = (
        "| Situation | What I did | Result |\n|---|---|---|\n"
        "| Outage during the launch week | Rolled back within minutes and wrote the postmortem | Back in 20 minutes |\n"
        "| Team conflict on the design | Ran a decision doc review with both sides | Shipped the simpler option |\n"
    )
    contacts = "| Name | Phone |\n|---|---|\n" + "".join(f"| Person {i} | +46 70 555 01 {i:02d} |\n" for i in range(20))
    notes = [_note("Career/Interview stories.md", table), _note("Reference/Contacts.md", contacts)]
    pairs, _, quarantine = _pairs(settings, notes, min_section_words=25)
    assert [(path, r) for path, _, r in pairs] == [("Career/Interview stories.md", table.strip())]
    assert [(r["file"], r["reason"]) for r in quarantine.rows] == [("Reference/Contacts.md", "no_long_section")]


def test_a_week_heading_names_what_the_week_covered(settings):
    body = (
        "## Week 12\n\n- ### Components of an App\n\t- Permanent deployment needs dedicated servers and power\n"
        "- ### Service Approach\n\t- Datacenter operators specialise in infrastructure\n"
        "```python\n# not a topic\n```\n"
    )
    pairs, _, _ = _pairs(settings, [_note("Courses/MAD.md", body)])
    assert [p for _, p, _ in pairs] == [
        "What are the main ideas of Week 12 (Components of an App, Service Approach) in MAD?"
    ]


def test_a_journal_template_heading_is_not_the_days_topic_and_its_checklist_is_not_the_answer(settings):
    notes = [
        _note(
            f"Journal/2024-05-2{day}.md",
            f"# Habits\n\n- {'DONE' if day % 2 else 'TODO'}: Study\n- TODO: Gym\n\n# Log\n\n## 09:1{day}\n\n"
            f"Coffee number {day}.\n\n## 17:27\n\n"
            f"Today was a good day at work, day {day}. The integration tests finally pass on the branch.",
        )
        for day in range(6)
    ]
    pairs, _, _ = _pairs(settings, notes)
    first = next((p, r) for path, p, r in pairs if path == "Journal/2024-05-21.md")
    assert first == (
        "Today was a good day at work, day 1. How did it go, and what's on your mind?",
        "Coffee number 1.\n\nThe integration tests finally pass on the branch.",
    )


def test_a_to_read_list_of_links_is_left_out_with_its_reason_but_action_items_stay(settings):
    reading = "\n".join(f"- TODO: [Paper {i} on trend following](https://papers.example/{i})" for i in range(5))
    actions = "- TODO: send Jonas the migration plan\n- TODO: book the room\n- DONE: close the incident doc"
    notes = [
        _note("Threads/Volatility.md", f"## Options\n\n{reading}"),
        _note("Meetings/Sync.md", f"## Tasks\n\n{actions}"),
    ]
    pairs, _, quarantine = _pairs(settings, notes, min_section_words=5)
    assert [path for path, _, _ in pairs] == ["Meetings/Sync.md"]
    assert [(r["file"], r["reason"]) for r in quarantine.rows] == [("Threads/Volatility.md", "task_list")]


def test_a_gerund_title_is_a_task_only_outside_reading_notes():
    text = "Trend signals on risk-adjusted returns work best when volatility is forecast too."
    assert classify("Forecasting mean reverting volatility", text, reading=True) == "chapter"
    assert classify("Installing man pages", "Alpine ships without man tools; add mandoc first.", reading=False) == (
        "howto"
    )


def test_part_headings_ask_for_that_part_and_template_headings_name_nothing(settings):
    long = "enough words here to pass the minimum section length of this test"
    notes = [
        _note(
            "Notes/DNS.md",
            f"## Introduction\n\nDNS maps names to addresses, {long}.\n\n## Conclusion\n\nCache it, {long}.",
        ),
        _note(
            "Notes/Serializers.md",
            f"## Serializers\n\n### How are they used in Django?\n\nDeclare fields and validate, {long}.\n\n"
            f"## Why use GraphQL?\n\n### Examples\n\nMany related entities in one query, {long}.",
        ),
    ] + [
        _note(f"Notes/Idea {i}.md", f"## Origin of Thought\n\nThis came from reading about topic {i}, {long}.")
        for i in range(10)
    ]
    pairs, _, _ = _pairs(settings, notes)
    prompts = {path: [] for path, _, _ in pairs}
    for path, prompt, _ in pairs:
        prompts[path].append(prompt)
    assert sorted(prompts["Notes/DNS.md"]) == ["Give me an overview of DNS.", "What are the takeaways of DNS?"]
    assert "About Serializers, Serializers: How are they used in Django?" not in prompts["Notes/Serializers.md"]
    assert "About Serializers: Why use GraphQL? Give me examples." in prompts["Notes/Serializers.md"]
    # "Origin of Thought" heads every idea note: the prompt names the idea, not the template's heading
    assert prompts["Notes/Idea 3.md"] == ["Explain Idea 3."]
