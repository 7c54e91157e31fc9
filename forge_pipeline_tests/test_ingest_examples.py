"""Building training examples: prompt rules for reflection notes, conversation handling, quarantine reasons."""

import json
from datetime import UTC, datetime

import polars as pl

from forge_pipeline.ingest.conversations import conversations_frame, read_conversations
from forge_pipeline.ingest.examples import TRAINING_EXAMPLES_SCHEMA, build_training_examples, note_prompt_and_reply
from forge_pipeline.ingest.vault import notes_frame, read_vault
from forge_pipeline.records import example_id_for


def _note(path, title, tags, body, headings=()):
    return {
        "path": path,
        "title": title,
        "frontmatter": "{}",
        "tags": list(tags),
        "links": [],
        "headings": list(headings),
        "created": "2026-03-02T00:00:00+00:00",
        "modified": "2026-03-05T00:00:00+00:00",
        "body": body,
        "content_hash": "h",
        "language": "en",
    }


def _conv(cid, messages, fmt="messages_jsonl", rating=None, corrected=None):
    return {
        "conversation_id": cid,
        "source_format": fmt,
        "source_path": f"{cid}.jsonl",
        "line": 1,
        "title": None,
        "created_at": datetime(2026, 4, 1, tzinfo=UTC),
        "messages": messages,
        "rating": rating,
        "feedback": None,
        "corrected_reply": corrected,
    }


DECISION = (
    "# Decision: Move\n\n## Context\n\nThe queue is slow\n\n## Options\n\n- A\n- B\n\n## Why\n\nBecause B is simpler."
)


def test_note_prompt_rules():
    created = datetime(2026, 3, 2, tzinfo=UTC)
    rule, prompt, reply = note_prompt_and_reply(
        {"tags": ["decision"], "title": "Decision - Move", "body": DECISION, "created": created, "headings": []}
    )
    assert rule == "decision"
    assert prompt == "I'm facing this decision: The queue is slow. What should I consider?"
    assert reply == "## Options\n\n- A\n- B\n\n## Why\n\nBecause B is simpler."
    rule, prompt, reply = note_prompt_and_reply(
        {
            "tags": ["learning"],
            "title": "What I learned about burnout",
            "body": "# What I learned about burnout\nRest matters.",
            "created": created,
        }
    )
    assert (rule, prompt, reply) == ("learning", "What did you learn about burnout?", "Rest matters.")
    rule, prompt, _ = note_prompt_and_reply(
        {"tags": ["journal", "reflection"], "title": "2026-03-02", "body": "# Monday\nGood day.", "created": created}
    )
    assert (rule, prompt) == ("journal", "How did Monday, March 2, 2026 go? What's on your mind?")
    rule, prompt, reply = note_prompt_and_reply(
        {
            "tags": ["reflection/work"],
            "title": "Team health",
            "body": "# Why we stall\nWe stall.",
            "created": created,
            "headings": ["Why we stall"],
        }
    )
    assert rule == "generic" and prompt == "What are your thoughts on Team health? In particular: Why we stall."
    assert reply == "# Why we stall\nWe stall."  # an H1 that is not the note's title is the person's text
    # A decision without a situation section falls back to the generic rule.
    rule, _, _ = note_prompt_and_reply(
        {"tags": ["decision"], "title": "D", "body": "## Options\nA", "created": created, "headings": ["Options"]}
    )
    assert rule == "generic"


def test_examples_from_notes_and_conversations(settings):
    notes = notes_frame(
        [
            _note("Decisions/Move.md", "Decision - Move", ["decision"], DECISION),
            _note("Meetings/m.md", "Sync", ["meeting"], "not a reflection"),
            _note("Journal/empty.md", "2026-03-02", ["journal"], "# Only a title"),
            _note("Journal/child.md", "Day", ["reflection/personal"], "Nested tags count."),
        ]
    )
    conversations = conversations_frame(
        [
            _conv(
                "c1",
                [
                    {"role": "user", "content": "q"},
                    {"role": "assistant", "content": "a"},
                    {"role": "user", "content": "unanswered"},
                ],
            ),
            _conv("c2", [{"role": "user", "content": "only a question"}]),
            _conv("c3", [{"role": "assistant", "content": "monologue"}]),
            _conv(
                "i1",
                [{"role": "user", "content": "q"}, {"role": "assistant", "content": "bad"}],
                "interaction",
                "down",
                "good",
            ),
            _conv(
                "i2", [{"role": "user", "content": "q"}, {"role": "assistant", "content": "bad"}], "interaction", "down"
            ),
        ]
    )
    settings = settings.model_copy(
        update={"ingest": settings.ingest.model_copy(update={"extraction": ["reflection_tags"]})}
    )
    examples, quarantine = build_training_examples(notes, conversations, settings)
    assert examples.schema == pl.Schema(TRAINING_EXAMPLES_SCHEMA)
    assert examples["example_id"].to_list() == sorted(examples["example_id"].to_list())
    assert sorted(examples["source_path"].to_list()) == [
        "Decisions/Move.md",
        "Journal/child.md",
        "c1.jsonl",
        "i1.jsonl",
    ]
    reasons = {(r["record_id"] or r["file"]): r["reason"] for r in quarantine.rows}
    assert reasons == {
        "Journal/empty.md": "empty_reply",
        "c2": "no_assistant_turn",
        "c3": "no_user_turn",
        "i2": "rated_down",
    }
    for row in examples.iter_rows(named=True):
        assert row["messages"][0] == {"role": "system", "content": settings.ingest.system_prompt}
        assert row["messages"][-1]["role"] == "assistant"
        assert row["example_id"] == example_id_for(row["messages"])
    corrected = examples.filter(pl.col("conversation_id") == "i1").row(0, named=True)
    assert corrected["source"] == "interaction" and corrected["messages"][-1]["content"] == "good"
    vault_row = examples.filter(pl.col("source_path") == "Decisions/Move.md").row(0, named=True)
    assert vault_row["source"] == "vault" and vault_row["tags"] == ["decision"]


def test_sample_data_examples(settings, sample_data, tmp_path):
    notes, _ = read_vault(settings.vault_dir, settings.ingest)
    conversations, _ = read_conversations(settings.conversations_dir, tmp_path / "none", 5_000_000)
    examples, quarantine = build_training_examples(notes, conversations, settings)
    by_source = dict(examples["source"].value_counts().iter_rows())
    # reflection_tags: 12 journal + 8 decisions + 9 learnings + 3 archive copies; sections: 14 sections of the
    # untagged meeting, reference and home notes; 22 JSONL + 3 ChatGPT minus conv-0009; 12 interactions.
    assert by_source == {"vault": 46, "conversation": 24, "interaction": 12}
    assert [(r["line"], r["reason"]) for r in quarantine.rows if r["line"]] == [(13, "no_assistant_turn")]
    # Reference notes that are only lookup tables, code or short lists give no section of prose.
    assert {r["file"] for r in quarantine.rows if r["reason"] == "no_long_section"} == {
        "Reference/Contacts.md",
        "Reference/Git recipes.md",
        "Reference/Home admin.md",
        "Reference/Keyboard shortcuts.md",
        "Reference/Postgres indexing cheatsheet.md",
    }
    rust = examples.filter(pl.col("source_path") == "Decisions/Decision - Rewrite the sync client in Rust.md").row(
        0, named=True
    )
    assert rust["messages"][1]["content"].startswith("I'm facing this decision: The desktop sync client")
    assert "## What I decided" in rust["messages"][2]["content"]
    again, _ = build_training_examples(notes, conversations, settings)
    assert again.equals(examples)


def test_a_choice_between_two_replies_trains_on_the_chosen_one(settings, tmp_path):
    """The server stores a choice with messages ending in the user turn; the chosen reply answers it."""
    import json

    from forge_pipeline.ingest.conversations import read_interactions
    from forge_pipeline.records import Quarantine

    path = tmp_path / "interactions.jsonl"
    question = [{"role": "user", "content": "Which migration plan?"}]
    path.write_text(
        "\n".join(
            json.dumps(r)
            for r in [
                {
                    "interaction_id": "good",
                    "messages": question,
                    "choice": {"replies": ["Plan A.", "Plan B."], "chosen": 1},
                },
                {"interaction_id": "bad", "messages": question, "choice": {"replies": ["only one"], "chosen": 3}},
            ]
        )
        + "\n"
    )
    quarantine = Quarantine("conversations")
    rows = read_interactions(path, 5_000_000, quarantine)
    assert [r["conversation_id"] for r in rows] == ["good"]
    assert [(q["record_id"], q["reason"]) for q in quarantine.rows] == [("bad", "wrong_shape")]
    examples, dropped = build_training_examples(notes_frame([]), conversations_frame(rows), settings)
    assert examples.height == 1 and not dropped.rows
    assert examples["messages"][0].to_list()[-2:] == [
        {"role": "user", "content": "Which migration plan?"},
        {"role": "assistant", "content": "Plan B."},
    ]


def test_terminal_control_characters_never_reach_an_example_and_stay_escaped_in_quarantine(settings):
    attack = "Sure.\x1b]0;TITLE\x07\x1b[2J Done\r\nnext line\x00"
    notes = notes_frame([_note("evil.md", "Evil", ["reflection"], f"# Evil\n{attack}")])
    conversations = conversations_frame(
        [
            _conv("c1", [{"role": "user", "content": "hi\x1b[31m"}, {"role": "assistant", "content": attack}]),
            _conv("c2", [{"role": "user", "content": "\x1b]0;x\x07 only a question"}]),  # quarantined: no reply
            _conv("c3", [{"role": "user", "content": "q"}], fmt="interaction", corrected=attack),
        ]
    )
    examples, quarantine = build_training_examples(notes, conversations, settings)
    contents = [m["content"] for row in examples.iter_rows(named=True) for m in row["messages"]]
    assert len(examples) == 3
    assert not any(c < " " and c not in "\n\t" or "\x7f" <= c <= "\x9f" for text in contents for c in text)
    assert "Sure. Done\nnext line" in contents and "hi" in contents
    payload = quarantine.frame()["payload"].to_list()[0]
    assert "\x1b" not in payload and "\\u001b]0;x\\u0007" in payload  # kept, escaped, for the person fixing it


def _multi_turn_interactions(tmp_path):
    """A three-turn playground chat as the server stores it: a choice on turn 2 (messages end with the turn-2
    question), then a correction of the turn-3 reply (messages end with that reply; turn 2's history is the
    chosen reply, as the page sends it)."""
    import json

    from forge_pipeline.ingest.conversations import read_interactions
    from forge_pipeline.records import Quarantine

    system = {"role": "system", "content": "Answer from my notes."}
    turn1 = [{"role": "user", "content": "What is my sourdough ratio?"}, {"role": "assistant", "content": "1:5:5."}]
    question2 = {"role": "user", "content": "And how often do I feed the starter?"}
    chosen = "Twice a day at room temperature."
    question3 = {"role": "user", "content": "What if I travel?"}
    records = [
        {
            "interaction_id": "choice-2",
            "messages": [system, *turn1, question2],
            "choice": {"replies": ["Once a month.", chosen], "chosen": 1},
        },
        {
            "interaction_id": "correct-3",
            "messages": [system, *turn1, question2, {"role": "assistant", "content": chosen}, question3]
            + [{"role": "assistant", "content": "I'm not sure. I'm not sure."}],
            "corrected_reply": "Put it in the fridge; it keeps a week.",
        },
    ]
    path = tmp_path / "interactions.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    quarantine = Quarantine("conversations")
    rows = read_interactions(path, 5_000_000, quarantine)
    assert not quarantine.rows
    return rows, system, turn1, question2, chosen, question3


def test_a_multi_turn_choice_is_the_conversation_as_seen_with_the_chosen_reply_answering_the_judged_turn(
    settings, tmp_path
):
    rows, system, turn1, question2, chosen, question3 = _multi_turn_interactions(tmp_path)
    examples, dropped = build_training_examples(notes_frame([]), conversations_frame(rows), settings)
    assert not dropped.rows
    by_id = {row["conversation_id"]: row for row in examples.iter_rows(named=True)}
    # The earlier reply ("1:5:5.") stays; the judged question is kept and the chosen reply answers it.
    assert by_id["choice-2"]["messages"] == [system, *turn1, question2, {"role": "assistant", "content": chosen}]
    assert by_id["choice-2"]["tags"] == ["choice"]
    # A correction replaces the reply it corrects, nothing else; the chosen reply of turn 2 is history.
    assert by_id["correct-3"]["messages"] == [
        system,
        *turn1,
        question2,
        {"role": "assistant", "content": chosen},
        question3,
        {"role": "assistant", "content": "Put it in the fridge; it keeps a week."},
    ]
    assert by_id["correct-3"]["tags"] == ["correction"]


def test_judged_conversation_answers_the_last_turn():
    from forge_pipeline.ingest.examples import judged_conversation

    seen = [
        {"role": "user", "content": "q1"},
        {"role": "assistant", "content": "a1"},
        {"role": "user", "content": "q2"},
    ]
    assert judged_conversation(seen, "picked") == [*seen, {"role": "assistant", "content": "picked"}]
    corrected = [*seen, {"role": "assistant", "content": "wrong"}]
    assert judged_conversation(corrected, "right") == [*seen, {"role": "assistant", "content": "right"}]


def test_dataview_inline_person_fields_name_people_like_frontmatter_ones():
    """Reading-notes templates write the author as a Dataview inline field (`**Creator**:: [[Anil Seth]]`): those
    names are known to the scrub as frontmatter person fields are."""
    from forge_pipeline.ingest.examples import frontmatter_names
    from forge_pipeline.prepare.config import ScrubSettings

    note = {
        "frontmatter": json.dumps({"attendees": ["[[People/Ilse Berg|Ilse]]"]}),
        "body": "## Metadata\n- **Creator**:: [[Lucie Morel]]\n- Author:: Tobias Köster, Dale Fisher\n"
        "- Status:: reading\nThe ratio:: of signal to noise is not a field of people.\n",
    }
    names = frontmatter_names(note, ScrubSettings().person_frontmatter_fields)
    assert names == ["Ilse Berg", "Ilse", "Lucie Morel", "Tobias Köster", "Dale Fisher"]


def test_a_one_word_creator_is_a_channel_unless_a_handle_and_a_one_word_attendee_is_a_person():
    """A video or reading note's Creator also names channels and sites ("Contrapoints", "3Blue1Brown", a domain):
    one word there is no person, which the scrub would otherwise replace in every prompt that names the video;
    an @handle is one. A journal's one-word attendee ("olu", "Chidi") is a person."""
    from forge_pipeline.ingest.examples import frontmatter_names
    from forge_pipeline.prepare.config import ScrubSettings

    scrub = ScrubSettings()
    note = {
        "frontmatter": json.dumps({"creator": "Contrapoints", "attendees": ["olu", "Chidi"]}),
        "body": "**Creator**:: [[3Blue1Brown]]\n**Creator**:: [[@visakanv on Twitter]]\n**Author**:: @roryreckons\n"
        "**Author**:: fs.blog, Abigail Thorn\n",
    }
    names = frontmatter_names(note, scrub.person_frontmatter_fields, scrub.creator_fields)
    assert names == ["olu", "Chidi", "@visakanv on Twitter", "@roryreckons", "Abigail Thorn"]
