"""Preference pairs from ratings, corrections and choices (real presidio, MiniLM and FAISS)."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime, timedelta

import pytest
from pydantic import ValidationError

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from forge_pipeline.feedback.pairs import build_preference_pairs, dpo_rows  # noqa: E402
from forge_pipeline.serve.interactions import InteractionIn, InteractionStore  # noqa: E402

T0 = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)
ASK = [{"role": "user", "content": "Should I migrate our cron jobs to a workflow engine?"}]


def _reply(text):
    return [*ASK, {"role": "assistant", "content": text}]


@pytest.fixture(scope="module")
def heavy():
    from forge_pipeline.prepare.embeddings import Embedder
    from forge_pipeline.prepare.pii import build_analyzer

    return build_analyzer(), Embedder()


def _store(settings, records):
    store = InteractionStore(settings.paths.interactions)
    for i, record in enumerate(records):
        store.append(InteractionIn.model_validate(record), when=T0 + timedelta(minutes=i))
    return store


@pytest.mark.slow  # presidio + MiniLM load: ~30 s on the shared 2-core machine
def test_corrections_choices_and_ratings_become_scrubbed_deduplicated_pairs(settings, heavy):
    analyzer, embedder = heavy
    settings.paths.ensure()
    _store(
        settings,
        [
            # corrected (and rated down): correction over the original; the e-mail must be scrubbed in both
            {
                "messages": _reply("Mail anna.berg@example.com and migrate everything now."),
                "rating": "down",
                "corrected_reply": "Ask anna.berg@example.com which jobs have retries, then migrate those first.",
                "model_version": "v0001",
            },
            # the same correction again: an exact duplicate, dropped
            {
                "messages": _reply("Mail anna.berg@example.com and migrate everything now."),
                "rating": "down",
                "corrected_reply": "Ask anna.berg@example.com which jobs have retries, then migrate those first.",
                "model_version": "v0001",
            },
            # a choice between two versions' replies
            {
                "messages": [{"role": "user", "content": "How do I say no to a meeting?"}],
                "choice": {
                    "replies": ["Decline with a short reason and offer to read the notes.", "Just ignore it."],
                    "chosen": 0,
                    "model_versions": ["v0002", "v0001"],
                },
            },
            # ratings on the same prompt from two versions: up over down
            {
                "messages": [
                    {"role": "user", "content": "Buy a flat next spring?"},
                    {"role": "assistant", "content": "Only if an emergency buffer remains after the deposit."},
                ],
                "rating": "up",
                "model_version": "v0002",
            },
            {
                "messages": [
                    {"role": "user", "content": "Buy a flat next spring?"},
                    {"role": "assistant", "content": "Yes, prices only go up."},
                ],
                "rating": "down",
                "model_version": "v0001",
            },
            # rated down with nothing better: counted, not paired
            {
                "messages": [
                    {"role": "user", "content": "What is my plan for June?"},
                    {"role": "assistant", "content": "No idea."},
                ],
                "rating": "down",
            },
        ],
    )
    with open(settings.paths.interactions / "broken.jsonl", "w") as handle:
        handle.write('{"messages": [{"role": "user", "content": "hi"}], "rating": "meh"}\n{not json\n')

    pairs, quarantine, report = build_preference_pairs([settings.paths.interactions], settings, analyzer, embedder)

    assert pairs.height == 3, pairs
    assert sorted(pairs["kind"].to_list()) == ["choice", "correction", "ratings"]
    correction = pairs.filter(pairs["kind"] == "correction").row(0, named=True)
    assert "anna.berg" not in correction["chosen"] + correction["rejected"]
    assert "<EMAIL_ADDRESS_1>" in correction["chosen"] and "<EMAIL_ADDRESS_1>" in correction["rejected"]
    assert correction["prompt"][0]["role"] == "system" and correction["prompt"][-1]["role"] == "user"
    assert correction["rejected_version"] == "v0001" and correction["chosen_version"] is None
    choice = pairs.filter(pairs["kind"] == "choice").row(0, named=True)
    assert choice["chosen"].startswith("Decline") and (choice["chosen_version"], choice["rejected_version"]) == (
        "v0002",
        "v0001",
    )
    ratings = pairs.filter(pairs["kind"] == "ratings").row(0, named=True)
    assert ratings["chosen"].startswith("Only if") and ratings["rejected"] == "Yes, prices only go up."
    assert report["exact_dropped"] == 1 and report["unpaired"] == {"rated_down_without_alternative": 1}
    reasons = quarantine.reason_counts()
    assert reasons == {"invalid_interaction": 1, "invalid_json": 1, "exact_duplicate": 1}, reasons
    bad = [r for r in quarantine.rows if r["reason"] == "invalid_interaction"][0]
    assert bad["file"].endswith("broken.jsonl") and bad["line"] == 1 and "rating" in bad["detail"]

    rows = dpo_rows(pairs)
    assert set(rows[0]) == {"prompt", "chosen", "rejected"} and rows[0]["chosen"][0]["role"] == "assistant"


def test_no_feedback_gives_an_empty_table(settings):
    settings.paths.ensure()
    _store(settings, [{"messages": _reply("Keep cron."), "rating": "up"}])
    # Nothing to pair: neither presidio nor the encoder is needed (None would fail if they were touched).
    pairs, quarantine, report = build_preference_pairs([settings.paths.interactions], settings, None, None)
    assert pairs.height == 0 and report["raw_pairs"] == 0 and quarantine.rows == []


@pytest.mark.parametrize(
    "body, field",
    [
        ({"messages": _reply("x"), "choice": {"replies": ["a", "b"], "chosen": 0}}, "end with the user turn"),
        ({"messages": ASK, "choice": {"replies": ["same", "same"], "chosen": 1}}, "identical"),
        ({"messages": ASK, "choice": {"replies": ["a", "b"], "chosen": 2}}, "chosen"),
        ({"messages": ASK, "choice": {"replies": ["a", "b"], "chosen": 0}, "rating": "up"}, "on its own"),
        ({"messages": _reply("x"), "corrected_reply": "  "}, "corrected_reply"),
    ],
)
def test_invalid_feedback_is_refused_with_the_reason(body, field):
    with pytest.raises(ValidationError) as err:
        InteractionIn.model_validate(body)
    assert field in str(err.value)


def test_stored_choice_round_trips_in_the_conventions_format(tmp_path):
    store = InteractionStore(tmp_path)
    stored = store.append(InteractionIn(messages=ASK, choice={"replies": ["a", "b"], "chosen": 1}))
    line = json.loads(store.path_for_id(stored).read_text())
    assert line["choice"] == {"replies": ["a", "b"], "chosen": 1, "model_versions": None}
    assert store.read_all()[0].choice.chosen == 1
