"""Reviewing what the PII scrub replaces (issue 29): values shown masked everywhere, decisions stored under the
data root and fed to the scrub through its allow/deny lists, a failed check that says what to change and
prints a rerun command the CLI runs, and `forge check-inputs` / `forge pii review` on real inputs."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import dagster as dg
import polars as pl
import pytest
from typer.testing import CliRunner

from forge_pipeline.cli import app
from forge_pipeline.defs.prepare.resources import PiiAnalyzerResource
from forge_pipeline.prepare.pii import FlaggedValue
from forge_pipeline.prepare.pii_decisions import (
    ReviewError,
    load_decisions,
    read_decisions_file,
    review_path,
    update_decisions,
)
from forge_pipeline.prepare.pii_display import RERUN_CHECK, lines, mask, masked_context, residual_report, snippet
from forge_pipeline.prepare.pii_flags import align_placeholders
from forge_pipeline.settings import SettingsError, load_settings
from forge_pipeline_tests.test_prepare_pii_rules import frame_of

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def test_mask_keeps_the_first_letter_of_each_word_only():
    assert mask("tips") == "t***"
    assert mask("Maren  Olsen") == "M*** O***"
    assert mask("vera.k@fastmail.com") == "v***"
    assert mask("+44 20 7946 0958") == "+***"


def test_context_masks_the_value_and_every_other_flagged_value_on_one_line():
    text = "Packing list.\nBring some tips for Ingrid, and TIPS for ingrid; the rest of the long list follows."
    start = text.index("tips")
    shown = masked_context(text, start, start + 4, also=["Ingrid"])
    assert "\n" not in shown and "t***" in shown and "T***" in shown and "I***" in shown and "i***" in shown
    assert not re.search(r"tips|ingrid", shown, re.IGNORECASE), shown
    flag = FlaggedValue("tips", "PERSON", 11, ["a", "b"], snippet(text, start, start + 4), "decision")
    line = lines([flag])[0]
    assert line.startswith("t*** x11 (PERSON, 2 examples): ") and "some t*** for" in line


def test_failure_report_names_each_setting_its_variable_and_the_review_command():
    report = residual_report([FlaggedValue("tips", "PERSON", 3, ["a"], "some tips for", "decision")])
    for needed in (
        "prepare.scrub.allow_list",
        "FORGE_PREPARE__SCRUB__ALLOW_LIST",
        "prepare.scrub.deny_list",
        "FORGE_PREPARE__SCRUB__DENY_LIST",
        "prepare.scrub.propagate_names",
        "FORGE_PREPARE__SCRUB__PROPAGATE_NAMES=false",
        "forge pii review --accept VALUE",
        "forge pii review --reject VALUE",
        "Then rerun: forge demo --select",
    ):
        assert needed in report, needed
    assert "tips" not in report


def test_placeholders_line_up_with_the_values_they_replaced():
    original = "Call Maren Olsen on +44 20 7946 0958, then Maren again."
    scrubbed = "Call <PERSON_1> on <PHONE_NUMBER_1>, then <PERSON_2> again."
    found = [(p, original[s:e]) for p, s, e in align_placeholders(original, scrubbed)]
    assert found == [("<PERSON_1>", "Maren Olsen"), ("<PHONE_NUMBER_1>", "+44 20 7946 0958"), ("<PERSON_2>", "Maren")]
    assert align_placeholders("something else entirely", scrubbed) == []
    # a value that holds the text after it ("pre" + "sent"): the pieces must line up over the whole text
    # (bug: the first "sent" after the placeholder was taken, which cut the value to "pre")
    original = "Ask Presenta about it; she sent it.\nThe rest stays."
    scrubbed = "Ask <PERSON_1>sent it.\nThe rest stays."
    assert [original[s:e] for _, s, e in align_placeholders(original, scrubbed)] == ["Presenta about it; she "]
    from forge_pipeline.prepare.pii_flags import replaced_values

    before = frame_of([["Is it empty or is not present at all?", "Yes."]])
    after = before.with_columns(
        pl.col("example_id").alias("original_example_id"),
        pl.Series(
            "messages",
            [
                [
                    {"role": "user", "content": "Is it empty or is not <PERSON_1>sent at all?"},
                    {"role": "assistant", "content": "Yes."},
                ]
            ],
        ),
    )
    (flag,) = replaced_values(before, after)
    assert flag.value == "pre" and "is not p***sent at all" in lines([flag])[0]  # a value inside a word, shown there
    text = "Maren\nand then Ilse wrote\nbye"
    assert [text[s:e] for _, s, e in align_placeholders(text, "<PERSON_1>\nand then <PERSON_2> wrote\nbye")] == [
        "Maren",
        "Ilse",
    ]


def test_review_decisions_join_the_lists_the_scrub_reads(tmp_path):
    root = tmp_path / "root"
    path = review_path(root)
    update_decisions(path, accept=["Docker", "tips", "Kafka"], reject=["ingrid"], reviewer="me")
    _, changed = update_decisions(path, reject=["tips"], accept=["docker"])  # re-deciding: the latest wins
    assert changed == 1  # "docker" was already accepted (letter case ignored); tips moved to rejected
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    settings = load_settings(data_root=root)
    scrub = settings.prepare.scrub
    assert sorted(scrub.allow_list) == ["Docker", "Kafka"]
    assert sorted(scrub.deny_list) == ["ingrid", "tips"]
    # a value the settings allow but the review rejects is replaced: the deny list wins
    os.environ["FORGE_PREPARE__SCRUB__ALLOW_LIST"] = '["ingrid"]'
    try:
        assert "ingrid" not in load_settings(data_root=root).prepare.scrub.allow_list
    finally:
        del os.environ["FORGE_PREPARE__SCRUB__ALLOW_LIST"]
    from forge_pipeline.prepare.pii_decisions import lists_record

    record = lists_record(settings)
    assert record["reviewed_accepted"] == 2 and record["reviewed_rejected"] == 2 and record["deny_list"] == 2
    assert "ingrid" not in json.dumps(record)
    update_decisions(path, forget=["tips"])
    assert lists_record(load_settings(data_root=root))["sha256"] != record["sha256"]


def test_a_broken_review_file_is_an_error_naming_the_file(tmp_path):
    path = review_path(tmp_path)
    path.parent.mkdir(parents=True)
    path.write_text("{not json")
    with pytest.raises(SettingsError, match=re.escape(str(path))):
        load_settings(data_root=tmp_path)
    path.write_text(json.dumps({"accepted": [{"value": ""}]}))
    with pytest.raises(ReviewError, match=r"accepted\[0\]\.value"):
        load_decisions(path)


def test_decisions_file_lines_and_their_errors(tmp_path):
    good = tmp_path / "decisions.txt"
    good.write_text("# keep the tools\naccept Docker\n\nreject maren olsen\n")
    assert read_decisions_file(good) == (["Docker"], ["maren olsen"])
    bad = tmp_path / "bad.txt"
    bad.write_text("accept Docker\nkeep Kafka\n")
    with pytest.raises(ReviewError, match=re.escape(f"{bad}:2:")):
        read_decisions_file(bad)


@pytest.mark.parametrize("select", ["*", "*dataset_version", "*embedding_index", "scrubbed_examples", "*lora_adapter"])
def test_rerun_selection_is_accepted_and_selects_the_failed_asset_and_what_was_asked_after_it(select, tmp_path):
    """Bug: a failed check printed `--select 'scrubbed_examples_no_residual_pii*'`, which the CLI refuses."""
    from forge_pipeline.definitions import build_definitions
    from forge_pipeline.selection import asset_of_step, rerun_selection

    graph = build_definitions(str(tmp_path)).resolve_asset_graph()
    failed = asset_of_step(graph, "scrubbed_examples_no_residual_pii")
    assert failed == dg.AssetKey("scrubbed_examples")
    rerun = rerun_selection(graph, failed, select)
    asked = dg.AssetSelection.all() if select == "*" else dg.AssetSelection.from_string(select)
    expected = (dg.AssetSelection.assets(failed).downstream() & asked).resolve(graph)
    assert dg.AssetSelection.from_string(rerun).resolve(graph) == expected
    # the check's own hint (it does not know the run's selection) is a selection the CLI accepts too
    assert dg.AssetSelection.from_string(RERUN_CHECK.split("--select ")[1]).resolve(graph) == {failed}


def _training_table(root: Path) -> pl.DataFrame:
    frame = frame_of(
        [
            ["How do I run Kafka in Docker on my laptop?", "Use the official image; ingrid wrote a compose file."],
            ["Who did I meet on Monday?", "Coffee with Ingrid Halvorsen, then a call on +44 20 7946 0958."],
        ]
    ).with_columns(pl.lit("en").alias("language"))
    (root / "tables").mkdir(parents=True, exist_ok=True)
    frame.write_parquet(root / "tables" / "training_examples.parquet")
    return frame


def test_pii_review_lists_masked_values_and_records_decisions_in_bulk(tmp_path):
    root = tmp_path / "root"
    _training_table(root)
    runner = CliRunner()
    listed = runner.invoke(app, ["--data-root", str(root), "pii", "review", "--list"], env={"COLUMNS": "200"})
    assert listed.exit_code == 0, listed.output
    assert "value(s) the scrub replaces" in listed.output and "+*** x1 (PHONE_NUMBER" in listed.output
    assert "I*** H***" in listed.output  # the name found by the NER, masked, with its context
    assert "Halvorsen" not in listed.output and "7946" not in listed.output
    ids = re.findall(r"\[([0-9a-f]{6})\] I\*\*\* H\*\*\*", listed.output)
    assert ids, listed.output

    template = runner.invoke(app, ["--data-root", str(root), "pii", "review", "--as-file"])
    assert template.exit_code == 0 and "\n#reject Ingrid Halvorsen\n" in template.output  # in full: for editing
    decisions = tmp_path / "decisions.txt"
    decisions.write_text(template.stdout)  # what `> decisions.txt` keeps (the progress line goes to stderr)
    assert read_decisions_file(decisions) == ([], [])  # the template decides nothing until a line is uncommented
    decisions.write_text(template.stdout + "accept Docker\nreject ingrid\n")
    done = runner.invoke(
        app, ["--data-root", str(root), "pii", "review", "--from-file", str(decisions), "--accept", ids[0]]
    )
    assert done.exit_code == 0, done.output
    stored = json.loads(review_path(root).read_text())
    assert {d["value"] for d in stored["accepted"]} == {"Docker", "Ingrid Halvorsen"}  # the id stood for its value
    assert [d["value"] for d in stored["rejected"]] == ["ingrid"]
    assert str(review_path(root)) in done.output

    masked = runner.invoke(app, ["--data-root", str(root), "pii", "review", "--accept", "I*** H***"])
    assert masked.exit_code == 1 and "masked value" in masked.output and "[id]" in masked.output
    decisions.write_text("accept Docker\nmaybe Kafka\n")
    refused = runner.invoke(app, ["--data-root", str(root), "pii", "review", "--from-file", str(decisions)])
    assert refused.exit_code == 1 and f"{decisions}:2:" in refused.output


def test_pii_review_one_value_at_a_time(tmp_path):
    root = tmp_path / "root"
    _training_table(root)
    # answers: view the first value in full, accept it; reject the second; quit
    result = CliRunner().invoke(
        app, ["--data-root", str(root), "pii", "review", "-i"], input="v\na\nr\nq\n", env={"COLUMNS": "200"}
    )
    assert result.exit_code == 0, result.output
    assert "[1/" in result.output and "2 decision(s) saved" in result.output
    stored = json.loads(review_path(root).read_text())
    assert len(stored["accepted"]) == 1 and len(stored["rejected"]) == 1
    assert f"value: {stored['accepted'][0]['value']}" in result.output  # `v` showed it in full


def test_pii_review_without_a_table_says_what_to_build(tmp_path):
    result = CliRunner().invoke(app, ["--data-root", str(tmp_path), "pii", "review", "--list"])
    assert result.exit_code == 1
    assert "training_examples.parquet" in result.output and "forge check-inputs" in result.output


def test_check_inputs_previews_what_the_scrub_would_replace(tmp_path, monkeypatch):
    vault, chats = tmp_path / "vault", tmp_path / "chats"
    (vault / "Journal").mkdir(parents=True)
    chats.mkdir()
    (vault / "Journal" / "Monday.md").write_text(
        "# Monday\n\n## Standup\n\nCoffee with Ingrid Halvorsen before standup; she will call me on +44 20 7946 0958 about "
        "the Kafka consumer lag, which she thinks is a configuration problem and not the brokers at all.\n"
    )
    monkeypatch.setenv("FORGE_DATA_ROOT", str(tmp_path / "root"))
    monkeypatch.setenv("FORGE_INGEST__MIN_SECTION_WORDS", "5")
    result = CliRunner().invoke(
        app, ["check-inputs", "--vault", str(vault), "--conversations", str(chats)], env={"COLUMNS": "200"}
    )
    assert result.exit_code == 0, result.output
    assert "PII scrub preview: 1 of 1 example(s) would change" in result.output
    assert re.search(r"\+\*\*\* x1 \(PHONE_NUMBER, 1 example\): \"\.\.\. .*call me on \+\*\*\*", result.output)
    assert "I*** H***" in result.output and "forge pii review --list" in result.output
    assert "7946" not in result.output.split("PII scrub preview")[1]


@pytest.mark.slow  # spaCy and MiniLM load, the chain from the scrub to dataset_version: ~30-60 s on two cores
def test_a_failed_residual_check_shows_masked_values_and_a_rerun_the_cli_runs(tmp_path, monkeypatch):
    """The failed check prints each value masked with count and context, the settings that change it, and a
    rerun command; after the decision that fixes it, that very command builds the dataset version."""
    from forge_pipeline.cli import _failure_lines
    from forge_pipeline.definitions import build_definitions
    from forge_pipeline.defs.prepare.checks import no_residual_pii
    from forge_pipeline.defs.prepare.resources import prepare_resources
    from forge_pipeline.defs.resources import shared_resources
    from forge_pipeline.prepare.pii import scrub_examples

    vault, chats, root, home = tmp_path / "vault", tmp_path / "chats", tmp_path / "root", tmp_path / "home"
    (vault / "Outdoors").mkdir(parents=True)
    chats.mkdir()
    home.mkdir()
    (vault / "Outdoors" / "Hiking.md").write_text(
        "# Hiking\n\n## Packing\n\nBring some tips for the ascent and plenty of water; the hut sells nothing "
        "before June and the last stretch is steep, so start early and rest often.\n"
    )
    for name, value in {
        "FORGE_DATA_ROOT": root,
        "FORGE_VAULT_DIR": vault,
        "FORGE_CONVERSATIONS_DIR": chats,
        "DAGSTER_HOME": home,
        "FORGE_INGEST__MIN_SECTION_WORDS": "5",
    }.items():
        monkeypatch.setenv(name, str(value))
    runner = CliRunner()
    built = runner.invoke(app, ["demo", "--select", "*training_examples"])
    assert built.exit_code == 0, built.output

    # A person rejected "tips"; a scrubbed table that still holds it (a scrub that missed it) fails the real check.
    assert runner.invoke(app, ["pii", "review", "--reject", "tips"]).exit_code == 0
    training = pl.read_parquet(root / "tables" / "training_examples.parquet")

    @dg.asset(name="scrubbed_examples", deps=["training_examples"])
    def missed_scrub(pii_analyzer: PiiAnalyzerResource) -> pl.DataFrame:
        """The real scrub, blind to the deny list: it misses the rejected word."""
        scrub = load_settings().prepare.scrub.model_copy(update={"deny_list": []})
        return scrub_examples(training, scrub, pii_analyzer.get(scrub, load_settings().runtime))[0]

    graph = build_definitions(str(root)).resolve_asset_graph()
    with dg.DagsterInstance.from_config(str(home)) as instance:
        result = dg.materialize(
            [dg.AssetSpec("training_examples"), dg.AssetSpec("vault_notes"), missed_scrub, no_residual_pii],
            resources=shared_resources(str(root)) | prepare_resources(),
            instance=instance,
            raise_on_error=False,
        )
    assert not result.success
    printed = "\n".join(_failure_lines(result, graph, "*dataset_version", home))
    assert "check scrubbed_examples:no_residual_pii failed: 1 value(s) left" in printed
    assert "t*** x1 (DENY_LIST, 1 example, prepare.scrub.deny_list): " in printed
    assert "some t*** for the ascent" in printed
    assert "FORGE_PREPARE__SCRUB__ALLOW_LIST" in printed and "forge pii review --accept VALUE" in printed
    assert not re.search(r"\btips\b", printed)
    for db in home.rglob("*.db"):  # the event log holds the check's report, masked
        assert b"some tips" not in db.read_bytes(), db
    status = runner.invoke(app, ["status"], env={"COLUMNS": "200"})
    assert "FAILED check scrubbed_examples:no_residual_pii" in status.output and "some t*** for" in status.output
    assert not re.search(r"\btips\b", status.output)
    rerun = re.findall(r"Then rerun: forge demo --select '([^']+)'", printed)
    assert rerun == ['key:"scrubbed_examples"+ and +key:"dataset_version"'], printed

    # The fix: "tips" is a word. The printed command runs the real scrub and builds the version.
    assert runner.invoke(app, ["pii", "review", "--accept", "tips"]).exit_code == 0
    again = runner.invoke(app, ["demo", "--select", rerun[0]])
    assert again.exit_code == 0, again.output
    entry = json.loads((root / "catalog" / "catalog.json").read_text())["versions"][-1]
    assert entry["pii_lists"]["reviewed_accepted"] == 1 and entry["pii_lists"]["allow_list"] == 1
    assert (
        "tips for the ascent"
        in (root / entry["path"] / "train.jsonl").read_text() + (root / entry["path"] / "validation.jsonl").read_text()
    )
