"""Example records for the embedding index tests: a planted note, unrelated notes, a long note with
headings (several chunks) and an interaction."""

from __future__ import annotations

SYSTEM = {"role": "system", "content": "You are my writing assistant."}

LONG_NOTE = "\n\n".join(
    [
        "# Garden plan",
        "The raised beds get tomatoes, basil and two rows of carrots this year. " * 6,
        "## Watering",
        "Drip irrigation on a timer, twenty minutes at dawn; check the filter every fortnight. " * 6,
        "## Pests",
        "Slugs ate the lettuce last spring: copper tape around the beds and beer traps by the path. " * 6,
    ]
)


def note(example_id: str, title: str, body: str, path: str) -> dict:
    return {
        "example_id": example_id,
        "source": "vault",
        "source_path": path,
        "conversation_id": None,
        "created_at": "2026-01-01T00:00:00+00:00",
        "tags": [],
        "messages": [
            SYSTEM,
            {"role": "user", "content": f"Write my note titled '{title}'."},
            {"role": "assistant", "content": body},
        ],
    }


def records() -> list[dict]:
    return [
        note(
            "sourdough",
            "Sourdough starter",
            "I feed my sourdough starter twice a day with equal weights of rye flour and water, and keep it "
            "in the fridge over the weekend.",
            "Kitchen/Sourdough.md",
        ),
        note(
            "postgres",
            "Database replicas",
            "Read replicas take the reporting load off the primary Postgres; failover is manual.",
            "Work/Replicas.md",
        ),
        note(
            "running",
            "Marathon training",
            "Long run on Sundays, intervals on Tuesdays, and an easy recovery jog after each hard day.",
            "Health/Running.md",
        ),
        note("garden", "Garden plan", LONG_NOTE, "Home/Garden.md"),
        {
            "example_id": "interaction-1",
            "source": "interaction",
            "source_path": None,
            "conversation_id": "conv-9",
            "created_at": "2026-02-01T00:00:00+00:00",
            "tags": [],
            "messages": [
                {"role": "user", "content": "Which train gets me to Lyon before noon?"},
                {"role": "assistant", "content": "The 08:04 TGV from Paris Gare de Lyon arrives at 10:00."},
            ],
        },
    ]
