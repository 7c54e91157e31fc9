"""`forge check-inputs`: read the vault and conversations without Dagster and report what would be dropped and
what examples they would give (per extraction strategy, with a sample of prompts) before anything is trained."""

from __future__ import annotations

import random
from collections import Counter
from pathlib import Path

import typer

from forge_pipeline.cli_root import settings_from


def register(app: typer.Typer) -> None:
    @app.command("check-inputs")
    def check_inputs(
        ctx: typer.Context,
        vault: Path | None = typer.Option(None, help="Vault folder (default: settings' vault_dir)."),
        conversations: Path | None = typer.Option(
            None, help="Conversations folder (default: settings' conversations_dir)."
        ),
        sample: int = typer.Option(8, min=0, help="Vault examples to show, drawn at random (seeded), 0 for none."),
        worst: int = typer.Option(10, min=0, help="Lowest quality-scored examples to show, 0 for none."),
        pii: bool = typer.Option(
            True, "--pii/--no-pii", help="Preview what the PII scrub would replace (values masked; loads spaCy)."
        ),
        seed: int = typer.Option(
            0, help="Seed of the sample: the same seed on the same vault shows the same examples."
        ),
        full: bool = typer.Option(False, "--full", help="Show whole prompts and replies, not their first line."),
    ) -> None:
        """Parse notes and conversations, list every file/line that would be quarantined and why, and count the
        training examples they would give (per extraction strategy and language, with a sample of prompts), and
        preview what the PII scrub would replace and flag (values masked, counts, context; `--no-pii` skips it).
        Exit status 0 even when records are dropped; non-zero only when the inputs cannot be read at all."""
        from forge_pipeline.ingest.conversations import read_conversations
        from forge_pipeline.ingest.examples import build_training_examples
        from forge_pipeline.ingest.vault import VaultReadStats, read_vault
        from forge_pipeline.records import escape_control

        settings = settings_from(ctx)
        vault, conversations = vault or settings.vault_dir, conversations or settings.conversations_dir
        for folder, setting in ((vault, "vault_dir"), (conversations, "conversations_dir")):
            if not folder.is_dir():  # a failure: nothing could be checked
                typer.echo(
                    escape_control(f"check-inputs: {folder} is not a folder; set {setting} or pass it"), err=True
                )
                raise typer.Exit(1)
        stats = VaultReadStats()
        notes, note_quarantine = read_vault(vault, settings.ingest, stats=stats)
        chats, chat_quarantine = read_conversations(
            conversations, settings.paths.interactions, settings.ingest.max_jsonl_line_bytes
        )
        dropped = note_quarantine.rows + chat_quarantine.rows
        typer.echo(
            f"{notes.height} notes, {chats.height} conversations readable; {len(dropped)} record(s) "
            "would be quarantined"
        )
        config = stats.config
        assert config is not None  # read_vault reads .obsidian/ (or its defaults) first, every time
        typer.echo(
            f"vault settings (.obsidian): templates folder {config.template_folders or 'none'}, daily notes "
            f"'{config.daily_folder or '/'}' named {config.daily_format}, flashcard tags {config.flashcards.tags}"
        )
        for problem in config.problems:
            typer.echo(escape_control(f"  not used: {problem}"))
        for row in dropped:
            where = row["file"] + (f":{row['line']}" if row["line"] else "")
            typer.echo(escape_control(f"  dropped {where}: {row['reason']}: {row['detail']}"))
        # Dropping records with their reasons is what ingest does every run (the sample data has some), not a
        # failure: the exit status stays 0. Missing folders or bad settings exit non-zero.
        by_strategy: dict[str, int] = {}
        details: dict = {}
        examples, example_quarantine = build_training_examples(notes, chats, settings, by_strategy, config, details)
        for line in examples_summary(
            examples, example_quarantine.rows, by_strategy, notes.height, settings, sample, seed, full, details
        ):
            typer.echo(escape_control(line))
        from forge_pipeline.prepare.scoring import quality_report_lines

        for line in quality_report_lines(examples, settings.prepare.filter.languages, worst):
            typer.echo(escape_control(line))
        if pii and examples.height:
            from forge_pipeline.prepare.pii_review import preview_lines, review_candidates

            # the scrub the pipeline would run, in memory; where Forge has a data root already, its detection
            # cache (offsets, no text) is shared with the pipeline, else nothing is written
            cache = settings.paths.cache if settings.paths.root.is_dir() else None
            candidates = review_candidates(examples, settings, cache_dir=cache, notes=notes)
            for line in preview_lines(candidates):
                typer.echo(escape_control(line))


def examples_summary(
    examples,
    dropped: list[dict],
    by_strategy: dict,
    notes: int,
    settings,
    sample: int,
    seed: int = 0,
    full: bool = False,
    details: dict | None = None,
) -> list[str]:
    """What `build_training_examples` made of the inputs, as lines for a person: examples per note and per
    strategy, prompt shapes, boilerplate removed, why notes gave none, languages the scrub would hold back, and
    `sample` vault examples drawn with `seed`. These are the person's own notes on their own screen, before the
    scrub (nothing here is stored or logged)."""
    details = details or {}
    from forge_pipeline.language import held_back_language

    from_vault = examples.filter(examples["source"] == "vault")
    notes_used = from_vault["source_path"].n_unique()
    strategies = ", ".join(f"{k} {v}" for k, v in sorted(by_strategy.items()) if k != "excluded") or "none"
    lines = [
        f"{examples.height} training examples: {from_vault.height} from {notes_used} of {notes} notes "
        f"({from_vault.height / max(notes, 1):.2f} per note; {strategies}), "
        f"{examples.height - from_vault.height} from conversations"
    ]
    shapes = details.get("prompt_shapes") or {}
    if shapes:
        total = max(sum(shapes.values()), 1)
        lines.append(
            "  prompt shapes: "
            + ", ".join(f"{k} {v} ({v / total:.0%})" for k, v in sorted(shapes.items(), key=lambda kv: -kv[1]))
        )
    shared = details.get("shared_prompts") or {}
    if any(shared.values()):
        lines.append(
            "  prompts shared by different answers: "
            + ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in shared.items())
            + " (raised levels add the parent heading, folder, path; 'dropped' were quarantined)"
        )
    removed = {k: v for k, v in (details.get("boilerplate") or {}).items() if v and k != "repeated_lines"}
    if removed:
        lines.append("  removed as template furniture: " + ", ".join(f"{k} {v}" for k, v in removed.items()))
    furniture = {"boilerplate", "header_block", "navigation"}
    reasons = Counter(row["reason"] for row in dropped if row["reason"] not in furniture)
    if by_strategy.get("excluded"):
        reasons["excluded by ingest.include/exclude"] = by_strategy["excluded"]
    if "no_long_section" in reasons:
        reasons[
            f"no_long_section (no section of ingest.min_section_words={settings.ingest.min_section_words} words)"
        ] = reasons.pop("no_long_section")
    if reasons:
        lines.append("  not used: " + ", ".join(f"{n} {reason}" for reason, n in reasons.most_common()))
    languages = Counter(lang or "undetermined" for lang in examples["language"].to_list())
    by_count = sorted(languages.items(), key=lambda item: (-item[1], item[0]))
    lines.append("  languages: " + ", ".join(f"{lang} {n}" for lang, n in by_count))
    allowed = settings.prepare.filter.languages
    held = sum(held_back_language(lang, allowed) for lang in examples["language"].to_list())
    if held:
        lines.append(
            f"  {held} example(s) in languages outside prepare.filter.languages {allowed} will be held back "
            "before the PII scrub (quarantine/scrubbed_examples.parquet, reason `language`)"
        )
    # the sample shows what training would see: examples in the languages the scrub lets through
    rows = [
        r
        for r in from_vault.select("example_id", "source_path", "messages", "language").to_dicts()
        if not held_back_language(r["language"], allowed)
    ]
    if sample and rows:
        lines.append(
            f"  {min(sample, len(rows))} of the {len(rows)} vault example(s) that go on to the PII scrub, "
            "as written (before it):"
        )
        shape_of = details.get("shape_of") or {}
        for row in random.Random(seed).sample(rows, min(sample, len(rows))):
            turns = {m["role"]: m["content"] for m in row["messages"]}
            lines.append(f"    {row['source_path']}  [{shape_of.get(row['example_id'], '?')}]")
            if full:
                lines.append("      prompt: " + turns.get("user", "").replace("\n", "\n        "))
                lines.append("      reply:  " + turns.get("assistant", "").replace("\n", "\n        "))
            else:
                lines.append(f"      prompt: {_shorten(turns.get('user', ''), 160)}")
                lines.append(f"      reply:  {_shorten(turns.get('assistant', ''), 100)}")
    return lines


def _shorten(text: str, width: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"
