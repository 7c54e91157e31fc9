"""`forge search` as a person runs it: an empty query is refused, and only the result table is printed (no
model-loading noise), with text from the data shown, never obeyed by the terminal."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from typer.testing import CliRunner

from forge_pipeline.cli import app
from forge_pipeline.embed.backends import build_backend
from forge_pipeline.embed.config import EmbedSettings
from forge_pipeline.embed.index import build_embedding_index
from forge_pipeline.embed.store import index_root
from forge_pipeline_tests.embed_fixtures import note, records


def test_an_empty_query_is_refused_before_anything_loads(tmp_path):
    result = CliRunner().invoke(app, ["--data-root", str(tmp_path), "search", "  "])
    assert result.exit_code == 2 and "the query is empty" in result.output


def test_search_prints_its_table_without_progress_bars_and_shows_hostile_text_inert(tmp_path, monkeypatch):
    hostile = note(
        "evil", "S", "[bold red]loud[/bold red] \x1b]0;owned\x07\x1b[2J sourdough starter", "Evil/\x1b[31mred.md"
    )
    build_embedding_index(
        [*records(), hostile],
        "v1",
        index_root(tmp_path),
        build_backend(EmbedSettings()),
        tmp_path / "cache",
        EmbedSettings(),
    )
    # Settings no other test uses: the command loads its own model instance, as a fresh `forge search` does.
    monkeypatch.setenv("FORGE_EMBED__BATCH_SIZE", "17")
    result = CliRunner().invoke(
        app, ["--data-root", str(tmp_path), "search", "sourdough starter", "-k", "5"], env={"COLUMNS": "300"}
    )
    assert result.exit_code == 0, result.output
    assert "Loading weights" not in result.output and "%|" not in result.output
    assert "\x1b" not in result.output and "\x07" not in result.output
    assert "\\x1b]0;owned\\x07\\x1b[2J" in result.output and "Evil/\\x1b[31mred.md" in result.output
    assert "[bold red]loud[/bold red]" in result.output  # shown as typed, not parsed as rich markup
