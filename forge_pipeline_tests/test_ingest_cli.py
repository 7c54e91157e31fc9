"""`forge check-inputs` and `forge datasets` on small inputs, through the real CLI app."""

import json

from typer.testing import CliRunner

from forge_pipeline.catalog.versions import create_dataset_version
from forge_pipeline.cli import app
from forge_pipeline.ingest.conversations import read_conversations
from forge_pipeline.ingest.examples import build_training_examples
from forge_pipeline.ingest.vault import read_vault


def test_check_inputs_lists_dropped_files_with_reasons(tmp_path):
    vault, chats = tmp_path / "vault", tmp_path / "chats"
    vault.mkdir()
    chats.mkdir()
    (vault / "ok.md").write_text("# Fine\ntext")
    (vault / "bad.md").write_bytes(b"\xff\xfe not utf-8")
    (chats / "c.jsonl").write_text(json.dumps({"messages": [{"role": "user", "content": "q"}]}) + "\n{oops\n")
    result = CliRunner().invoke(app, ["check-inputs", "--no-pii", "--vault", str(vault), "--conversations", str(chats)])
    assert result.exit_code == 0, result.output  # quarantining is normal work, not a failure
    assert "1 notes, 1 conversations readable; 2 record(s) would be quarantined" in result.output
    assert "dropped bad.md: not_utf8" in result.output
    assert f"dropped {chats / 'c.jsonl'}:2: invalid_json" in result.output


ENGLISH = (
    "I keep coming back to this because the first attempt failed for reasons nobody wrote down, and the "
    "second attempt only worked because we measured before changing anything at all."
)
GERMAN = (
    "Ich komme immer wieder darauf zurück, weil der erste Versuch aus Gründen scheiterte, die niemand "
    "aufgeschrieben hat, und der zweite Versuch nur gelang, weil wir vorher gemessen haben."
)


def test_check_inputs_counts_the_examples_a_vault_gives_and_shows_a_sample(tmp_path):
    vault, chats = tmp_path / "vault", tmp_path / "chats"
    (vault / "Projects").mkdir(parents=True)
    chats.mkdir()
    (vault / "Projects" / "Postgres locks.md").write_text(f"{ENGLISH}\n\n## Advisory locks\n\n{ENGLISH}\n")
    (vault / "Projects" / "Sperren.md").write_text(f"## Beratung\n\n{GERMAN}\n")
    (vault / "Stub.md").write_text("Too short to learn from.\n")
    (chats / "c.jsonl").write_text(
        json.dumps({"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]}) + "\n"
    )
    result = CliRunner().invoke(
        app, ["check-inputs", "--no-pii", "--vault", str(vault), "--conversations", str(chats)], env={"COLUMNS": "200"}
    )
    assert result.exit_code == 0, result.output
    out = result.output
    assert "4 training examples: 3 from 2 of 3 notes (1.00 per note; sections 3), 1 from conversations" in out
    assert "not used: 1 no_long_section (no section of ingest.min_section_words=25 words)" in out
    assert "languages: en 2, de 1, undetermined 1" in out, out
    assert "1 example(s) in languages outside prepare.filter.languages ['en'] will be held back" in out
    # the sample is what training would see: the English note's sections, not the German one held back
    assert "2 of the 2 vault example(s) that go on to the PII scrub, as written (before it):" in out
    assert "prompt: Explain Advisory locks in Postgres locks." in out
    assert "Beratung" not in out
    quiet = CliRunner().invoke(
        app,
        [
            "check-inputs",
            "--no-pii",
            "--vault",
            str(vault),
            "--conversations",
            str(chats),
            "--sample",
            "0",
            "--worst",
            "0",
        ],
    )
    assert quiet.exit_code == 0 and "prompt:" not in quiet.output and "4 training examples" in quiet.output


def test_check_inputs_fails_only_when_it_cannot_read_the_inputs(tmp_path):
    vault = tmp_path / "vault"
    vault.mkdir()
    result = CliRunner().invoke(app, ["check-inputs", "--vault", str(vault), "--conversations", str(tmp_path / "nope")])
    assert result.exit_code == 1 and f"{tmp_path / 'nope'} is not a folder" in result.output


def test_check_inputs_shows_control_characters_escaped(tmp_path):
    vault, chats = tmp_path / "vault", tmp_path / "chats"
    vault.mkdir()
    chats.mkdir()
    (chats / "c.jsonl").write_text(json.dumps({"messages": [{"role": "\x1b]0;owned\x07", "content": "q"}]}) + "\n")
    result = CliRunner().invoke(app, ["check-inputs", "--no-pii", "--vault", str(vault), "--conversations", str(chats)])
    assert result.exit_code == 0
    assert "\x1b" not in result.output and "\x07" not in result.output and "\\x1b]0;owned\\x07" in result.output


def test_datasets_lists_versions(settings, tmp_path):
    runner = CliRunner()
    empty = runner.invoke(app, ["--data-root", str(settings.data_root), "datasets"])
    assert empty.exit_code == 0 and "no dataset versions" in empty.output
    notes, _ = read_vault(settings.vault_dir, settings.ingest)
    conversations, _ = read_conversations(settings.conversations_dir, tmp_path / "none", 5_000_000)
    examples, _ = build_training_examples(notes, conversations, settings)
    entry = create_dataset_version(examples, settings, {})
    listed = runner.invoke(app, ["--data-root", str(settings.data_root), "datasets"], env={"COLUMNS": "200"})
    assert listed.exit_code == 0 and entry["version_id"] in listed.output
