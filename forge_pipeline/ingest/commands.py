"""`forge check-inputs`: read the vault and conversations without Dagster and report what would be dropped."""

from __future__ import annotations

from pathlib import Path

import typer


def register(app: typer.Typer) -> None:
    @app.command("check-inputs")
    def check_inputs(
        vault: Path = typer.Option(None, help="Vault folder (default: settings' vault_dir)."),
        conversations: Path = typer.Option(None, help="Conversations folder (default: settings' conversations_dir)."),
    ) -> None:
        """Parse notes and conversations and list every file/line that would be quarantined, and why (exit
        status 0 even then; non-zero only when the inputs cannot be read at all)."""
        from forge_pipeline.ingest.conversations import read_conversations
        from forge_pipeline.ingest.vault import read_vault
        from forge_pipeline.records import escape_control
        from forge_pipeline.settings import load_settings

        settings = load_settings()
        vault, conversations = vault or settings.vault_dir, conversations or settings.conversations_dir
        for folder, setting in ((vault, "vault_dir"), (conversations, "conversations_dir")):
            if not folder.is_dir():  # a failure: nothing could be checked
                typer.echo(
                    escape_control(f"check-inputs: {folder} is not a folder; set {setting} or pass it"), err=True
                )
                raise typer.Exit(1)
        notes, note_quarantine = read_vault(vault, settings.ingest)
        chats, chat_quarantine = read_conversations(
            conversations, settings.paths.interactions, settings.ingest.max_jsonl_line_bytes
        )
        dropped = note_quarantine.rows + chat_quarantine.rows
        typer.echo(
            f"{notes.height} notes, {chats.height} conversations readable; {len(dropped)} record(s) "
            "would be quarantined"
        )
        for row in dropped:
            where = row["file"] + (f":{row['line']}" if row["line"] else "")
            typer.echo(escape_control(f"  dropped {where}: {row['reason']}: {row['detail']}"))
        # Dropping records with their reasons is what ingest does every run (the sample data has some), not a
        # failure: the exit status stays 0. Missing folders or bad settings exit non-zero.
