"""Model-written questions for vault sections (prepare.questions): the answerability check on hand-written
questions, the official openai SDK against Forge's own server, a clear error when the endpoint is down, and
nothing changed when the setting is off."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from forge_pipeline.prepare.config import QuestionSettings
from forge_pipeline.prepare.questions import (
    QuestionEndpointError,
    answered_by,
    clean_question,
    generate_questions,
)
from forge_pipeline.records import example_id_for, examples_frame

SECTION = (
    "I moved the nightly backup from cron to a systemd timer last week. The timer logs to the journal, so when "
    "the disk filled up on Tuesday I could see exactly which run failed and why. Restic 0.16 prunes the old "
    "snapshots every Sunday."
)


@pytest.mark.parametrize(
    "question",
    [
        "Why did you move the nightly backup from cron to a systemd timer?",
        "How does Restic 0.16 prune old snapshots?",
        "What happened when the disk filled up on Tuesday?",
    ],
)
def test_questions_the_section_answers_are_accepted(question):
    accepted, reason = answered_by(question, SECTION, 0.5)
    assert accepted, reason


@pytest.mark.parametrize(
    ("question", "reason"),
    [
        ("What is the capital of France?", "not_in_section"),
        ("How do Kubernetes operators reconcile custom resources?", "not_in_section"),
        ("Backups are important.", "not_one_question"),
        ("What is it?", "names_nothing"),
        ("Why? And how did the timer fail?", "not_one_question"),
        ("What did <PERSON_1> say about the systemd timer <% tp.date %>?", "template_or_placeholder"),
    ],
)
def test_questions_it_does_not_answer_are_refused_with_a_reason(question, reason):
    assert answered_by(question, SECTION, 0.5) == (False, reason)


def test_model_answers_are_cleaned_to_one_question():
    assert clean_question('Question: "Why move backups to a systemd timer?"\nBecause...') == (
        "Why move backups to a systemd timer?"
    )
    assert clean_question("1. How does Restic prune snapshots?") == "How does Restic prune snapshots?"


def _frame():
    rows = []
    for source, prompt in (("vault", "What are your thoughts on Backups?"), ("conversation", "How are backups?")):
        messages = [{"role": "user", "content": prompt}, {"role": "assistant", "content": SECTION}]
        rows.append(
            {
                "example_id": example_id_for(messages),
                "messages": messages,
                "source": source,
                "source_path": "Backups.md" if source == "vault" else "chats.jsonl",
                "conversation_id": None if source == "vault" else "c1",
                "created_at": datetime(2026, 1, 1, tzinfo=UTC),
                "tags": [],
            }
        )
    return examples_frame(rows)


def test_off_by_default_and_a_clear_error_when_the_endpoint_is_down(tmp_path):
    from forge_pipeline_tests.ui_support import free_port

    frame = _frame()
    unchanged, report = generate_questions(frame, QuestionSettings(), tmp_path)
    assert unchanged.equals(frame) and report.asked == 0
    url = f"http://127.0.0.1:{free_port()}/v1"
    with pytest.raises(QuestionEndpointError, match=rf"prepare.questions.base_url={url}: cannot connect"):
        generate_questions(frame, QuestionSettings(base_url=url, timeout_s=5), tmp_path)


@pytest.mark.slow
def test_questions_from_forge_serve_through_the_openai_sdk(serve_server, tmp_path):
    """Forge's real server (tiny random-init model) asked through the official SDK: what comes back replaces the
    rule-based prompt only when the check accepts it; a re-run asks the server nothing and gives the same table."""
    # The session's server has n_ctx 512 and the tiny model's tokenizer spends about a token per character.
    settings = QuestionSettings(
        base_url=f"http://127.0.0.1:{serve_server['port']}/v1", max_tokens=12, max_section_chars=40
    )
    frame = _frame()
    out, report = generate_questions(frame, settings, tmp_path)
    assert report.asked == 1  # the vault example only: conversations already have the person's own question
    assert report.accepted + sum(report.refused.values()) == 1
    vault = out.filter(out["source"] == "vault").row(0, named=True)
    kept = report.examples[0]["generated"] if report.accepted else "What are your thoughts on Backups?"
    assert vault["messages"][0]["content"] == kept
    assert vault["example_id"] == example_id_for(vault["messages"])
    assert out.filter(out["source"] == "conversation").equals(frame.filter(frame["source"] == "conversation"))
    again, second = generate_questions(frame, settings, tmp_path)
    assert second.asked == 0 and second.cached == 1 and again.equals(out)
