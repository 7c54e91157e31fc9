"""The per-example quality score: each reason on the kind of text that earns it, the dataset-wide signals (shared
prompts, boilerplate lines), the summary a dataset version carries and the order `forge curate` reviews in."""

from datetime import UTC, datetime

import polars as pl

from forge_pipeline.curate.review import render, select_examples
from forge_pipeline.prepare.scoring import (
    ExampleContext,
    boilerplate_lines,
    quality_report_lines,
    score_example,
    score_examples,
    score_summary,
)
from forge_pipeline.records import example_id_for, examples_frame

OWN_WRITING = (
    "I moved the nightly backup from cron to a systemd timer last week. The timer logs to the journal, so when "
    "the disk filled up on Tuesday I could see exactly which run failed and why, instead of finding an empty "
    "mail from cron two days later. Next step is a second target off-site."
)


def chat(prompt: str, reply: str) -> list[dict]:
    return [
        {"role": "system", "content": "You are the user's assistant."},
        {"role": "user", "content": prompt},
        {"role": "assistant", "content": reply},
    ]


def reasons(result) -> set[str]:
    return {reason.split(":", 1)[0] for reason in result.reasons}


def test_own_writing_with_a_specific_question_scores_full_marks():
    result = score_example(chat("How did you set up the home server backups with systemd timers?", OWN_WRITING))
    assert result.score == 1.0 and result.reasons == ()
    # a note titled by its one-word subject names it
    assert score_example(chat("What are your thoughts on Kubernetes?", OWN_WRITING)).reasons == ()


def test_each_problem_costs_points_and_names_itself():
    cases = {
        "placeholder_in_prompt": chat("What did <PERSON_1> say about the backup plan?", OWN_WRITING),
        "placeholders": chat("Who came to the planning meeting?", OWN_WRITING + " <PERSON_1> and <PERSON_2> agreed."),
        "vague_prompt": chat("What are your thoughts on Notes?", OWN_WRITING),
        "vague_prompt ": chat("What do you think about it?", OWN_WRITING),
        "template_syntax": chat("What is on the daily template?", OWN_WRITING + "\n\n<% tp.file.cursor() %>"),
        "clipped": chat(
            "What does the article on deep work argue?",
            "> Deep work is the ability to focus without distraction on a cognitively demanding task.\n"
            "> It is a skill that allows you to quickly master complicated information.\n"
            "> In an economy that rewards depth, the people who cultivate it will thrive.\n"
            "I agree.",
        ),
        "short_reply": chat("How did the backup restore test go?", "It worked fine in the end."),
        "cut_mid_sentence": chat(
            "How did you set up the home server backups?", OWN_WRITING + "\nThen I wanted to check whether the"
        ),
    }
    for name, messages in cases.items():
        result = score_example(messages)
        assert name.strip() in reasons(result), (name, result)
        assert result.score < 1.0
    flashcard = score_example(chat("Why did you choose to work in software? #card", OWN_WRITING))
    assert "template_syntax" in reasons(flashcard)
    navigation = score_example(chat("How was the day at the lake?", "<< Yesterday | Tomorrow >>\n" + OWN_WRITING))
    assert "template_syntax" in reasons(navigation)


def test_clippings_are_told_from_own_writing_by_source_lines_tags_and_folders():
    source_line = "source: https://example.org/posts/deep-work\n" + OWN_WRITING
    assert "clipped" in reasons(score_example(chat("What does the deep work post say?", source_line)))
    readwise = "## Highlights\n- Focus is a muscle that tires.\n- " + OWN_WRITING
    assert "clipped" in reasons(score_example(chat("What does the deep work post say?", readwise)))
    question = "What does the deep work post say about focus?"
    assert "clipped" in reasons(score_example(chat(question, OWN_WRITING), tags=["clippings"]))
    assert "clipped" in reasons(score_example(chat(question, OWN_WRITING), source_path="Clippings/Deep work.md"))
    # A single quote inside one's own paragraph is still one's own writing.
    mine = OWN_WRITING + "\n> Make it work, then make it fast.\nThat is what I keep coming back to."
    assert "clipped" not in reasons(score_example(chat(question, mine)))


def test_context_from_the_dataset_lowers_the_score():
    messages = chat("How did you set up the home server backups?", OWN_WRITING)
    assert score_example(messages, context=ExampleContext(answers_sharing_prompt=3)).score == 0.7
    repeated = frozenset({"tags:", "related: [[index]]"})
    templated = chat("How did you set up the home server backups?", "Tags:\n" + OWN_WRITING + "\nRelated: [[Index]]")
    result = score_example(templated, context=ExampleContext(boilerplate_lines=repeated))
    assert "boilerplate" in reasons(result) and "2 of 3 lines" in " ".join(result.reasons)


def _frame(pairs: list[tuple[str, str, str]]) -> pl.DataFrame:
    rows = []
    for path, prompt, reply in pairs:
        messages = chat(prompt, reply)
        rows.append(
            {
                "example_id": example_id_for(messages),
                "messages": messages,
                "source": "vault",
                "source_path": path,
                "conversation_id": None,
                "created_at": datetime(2026, 1, 1, tzinfo=UTC),
                "tags": [],
            }
        )
    return examples_frame(rows)


def test_shared_prompts_and_boilerplate_are_found_across_the_dataset():
    header = "Tags: [[Daily]]"
    frame = _frame(
        [
            ("Books/Volume 1.md", "What are your thoughts on System Design Interview?", OWN_WRITING),
            ("Books/Volume 2.md", "What are your thoughts on System Design Interview?", OWN_WRITING + " Part two."),
            *[
                (f"Daily/{d}.md", f"How was the hike on day {d} of the trip?", f"{header}\n{OWN_WRITING} Day {d}.")
                for d in range(1, 6)
            ],
        ]
    )
    scored = score_examples(frame)
    assert scored.columns[-2:] == ["quality_score", "quality_reasons"]
    by_path = {row["source_path"]: row for row in scored.iter_rows(named=True)}
    assert any(r.startswith("shared_prompt: 2") for r in by_path["Books/Volume 1.md"]["quality_reasons"])
    assert any(r.startswith("boilerplate") for r in by_path["Daily/3.md"]["quality_reasons"])
    assert not any(r.startswith("boilerplate") for r in by_path["Books/Volume 1.md"]["quality_reasons"])
    # The same answer twice under one prompt (a duplicate) is not a shared prompt.
    twice = score_examples(_frame([("a.md", "How did the restore test go?", OWN_WRITING)] * 2))
    assert not any(r.startswith("shared_prompt") for row in twice["quality_reasons"] for r in row)
    assert boilerplate_lines([("a", header), ("b", header)]) == frozenset()  # two notes are not a template
    code = "```python\nreturn x\n```\n}\n$$\n\\begin{array}{c}\n\\hline\n\\end{array}\n$$\n\\hline"
    # code and math repeat without being a template
    assert boilerplate_lines([(str(n), code) for n in range(5)]) == frozenset()


def test_summary_report_and_curate_order_put_the_worst_first():
    frame = _frame(
        [
            ("good.md", "How did you set up the home server backups?", OWN_WRITING),
            ("bad.md", "What did <PERSON_1> think of Notes?", "<% tp.file.cursor() %> ok"),
            ("middling.md", "What are your thoughts on Notes?", OWN_WRITING),
        ]
    )
    scored = score_examples(frame)
    summary = score_summary(scored)
    assert summary["examples"] == 3 and sum(summary["bands"].values()) == 3
    assert summary["reasons"]["vague_prompt"] == 2
    lines = quality_report_lines(frame, worst=2)
    assert "bad.md" in lines[3] and "template_syntax" in lines[5]
    order = [row["source_path"] for row in select_examples(scored, {}, status="all")]
    assert order == ["bad.md", "middling.md", "good.md"]
    assert [row["source_path"] for row in select_examples(frame, {}, status="all")] == [
        "good.md",
        "bad.md",
        "middling.md",
    ]
    from rich.console import Console

    console = Console(width=120, record=True)
    console.print(render(select_examples(scored, {}, status="all")[0], None, 1, 3))
    shown = console.export_text()
    assert "quality       0.00" in shown and "placeholder_in_prompt" in shown


def test_check_inputs_prints_the_distribution_and_the_worst_examples(tmp_path):
    from typer.testing import CliRunner

    from forge_pipeline.cli import app

    vault, chats = tmp_path / "vault", tmp_path / "chats"
    (vault / "Clippings").mkdir(parents=True)
    chats.mkdir()
    (vault / "Backups.md").write_text(f"## Systemd timers for the nightly backup\n\n{OWN_WRITING}\n")
    (vault / "Clippings" / "Deep work.md").write_text(f"## Focus\n\n{OWN_WRITING}\n")
    german = (
        "Ich komme immer wieder darauf zurück, weil der erste Versuch aus Gründen scheiterte, die niemand "
        "aufgeschrieben hat, und der zweite Versuch nur gelang, weil wir vorher gemessen haben."
    )
    (vault / "Beratung.md").write_text(f"## Sitzung\n\n{german}\n")
    args = ["check-inputs", "--vault", str(vault), "--conversations", str(chats), "--sample", "0"]
    out = CliRunner().invoke(app, args, env={"COLUMNS": "200"}).output
    assert "quality score (prepare.scoring): mean 0.85" in out and "good (>= 0.8) 1, doubtful (0.5-0.8) 1" in out
    assert "the 2 lowest-scored examples" in out
    assert out.index("Clippings/Deep work.md") < out.index("Backups.md")  # worst first
    assert "why: clipped: folder 'clippings'" in out
    assert "Sitzung" not in out and "Beratung" not in out  # held back for its language: not scored as training data
    quiet = CliRunner().invoke(app, [*args, "--worst", "0"], env={"COLUMNS": "200"}).output
    assert "quality score" in quiet and "lowest-scored" not in quiet
