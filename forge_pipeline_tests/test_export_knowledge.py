"""The knowledge check: questions from a dataset version's vault examples, scored on the note's key terms."""

from __future__ import annotations

import json

from forge_pipeline.export.knowledge import knowledge_questions, score_knowledge, term_score


def _row(example_id, question, reply, source="vault"):
    return {
        "example_id": example_id,
        "source": source,
        "source_path": f"{example_id}.md",
        "messages": [
            {"role": "system", "content": "Answer from my notes."},
            {"role": "user", "content": question},
            {"role": "assistant", "content": reply},
        ],
    }


def _version(tmp_path):
    train = [
        _row("a", "What did I learn about saying no?", "A short clear no with a smaller offer beats a reluctant yes."),
        _row("b", "What did I learn about Postgres locks?", "Set lock_timeout before migrations; advisory locks help."),
        _row("c", "Tell me about lunch.", "We had soup.", source="conversation"),  # not a note: no question
    ]
    validation = [_row("v", "What did I learn about burnout?", "Burnout crept in through evenings; sleep protects me.")]
    for name, rows in (("train", train), ("validation", validation)):
        (tmp_path / f"{name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return tmp_path


def test_questions_come_from_vault_examples_held_out_first_with_terms_not_in_the_question(tmp_path):
    questions = knowledge_questions(_version(tmp_path), limit=10)
    assert [(q["messages"][-1]["content"], q["held_out"]) for q in questions] == [
        ("What did I learn about burnout?", True),
        ("What did I learn about saying no?", False),
        ("What did I learn about Postgres locks?", False),
    ]
    assert all(q["messages"][-1]["role"] == "user" and len(q["key_terms"]) >= 2 for q in questions)
    burnout = questions[0]["key_terms"]
    assert "burnout" not in burnout and {"evenings", "sleep"} <= set(burnout)  # echoing the question earns nothing
    assert knowledge_questions(tmp_path, limit=1) == questions[:1]


def test_an_answer_that_carries_the_notes_terms_scores_above_one_that_does_not(tmp_path):
    questions = knowledge_questions(_version(tmp_path), limit=10)
    terms = questions[2]["key_terms"]
    assert term_score("Set a lock timeout before each migration; advisory locks.", terms) > term_score(
        "I'm not sure. I'm not sure.", terms
    )
    knowing = score_knowledge(
        questions,
        ["I'm not sure."] * 3,
        ["Evenings crept in, sleep.", "A short clear no with an offer.", "Set lock_timeout before migrations."],
    )
    assert knowing["base_score"] == 0.0 and knowing["tuned_score"] > 0.5
    assert knowing["held_out_questions"] == 1 and knowing["tuned_held_out_score"] is not None
    assert len(knowing["rows"]) == 3
