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
        """Parse notes and conversations and list every file/line that would be quarantined, and why."""
        from forge_pipeline.ingest.conversations import read_conversations
        from forge_pipeline.ingest.vault import read_vault
        from forge_pipeline.records import escape_control
        from forge_pipeline.settings import load_settings

        settings = load_settings()
        notes, note_quarantine = read_vault(vault or settings.vault_dir, settings.ingest)
        chats, chat_quarantine = read_conversations(conversations or settings.conversations_dir,
                                                    settings.paths.interactions, settings.ingest.max_jsonl_line_bytes)
        typer.echo(f"{notes.height} notes, {chats.height} conversations readable")
        for row in note_quarantine.rows + chat_quarantine.rows:
            where = row["file"] + (f":{row['line']}" if row["line"] else "")
            typer.echo(escape_control(f"  dropped {where}: {row['reason']}: {row['detail']}"))
        # Dropping a record with its reason is normal operation, not a failure: the exit status stays 0.
        # Unreadable folders or settings raise and exit non-zero.
