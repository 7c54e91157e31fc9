"""Reading a vault: one row per good note, a quarantine row (file + reason) for each bad one, and a parse cache."""

import json
import os
from pathlib import Path

import polars as pl

from forge_pipeline.ingest.config import IngestSettings
from forge_pipeline.ingest.vault import NOTES_SCHEMA, VaultReadStats, read_vault


def _write(root: Path, rel: str, data: str | bytes) -> Path:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data.encode("utf-8") if isinstance(data, str) else data)
    return path


GOOD = "---\ntags: [journal]\ncreated: 2026-03-02\n---\n# Monday\nA good day. [[Other note]]\n#reflection/work\n"


def test_sample_vault_reads_45_notes_and_quarantines_the_4_broken(sample_data):
    notes, quarantine = read_vault(sample_data / "sample_vault", IngestSettings())
    assert notes.height == 45
    assert notes.schema == pl.Schema(NOTES_SCHEMA)
    assert not notes.filter(
        pl.col("path").str.starts_with(".obsidian") | pl.col("path").str.starts_with("attachments")
    ).height
    reasons = {(row["file"], row["reason"]) for row in quarantine.rows}
    assert reasons == {
        ("Broken/bad frontmatter.md", "invalid_frontmatter"),
        ("Broken/unclosed frontmatter.md", "invalid_frontmatter"),
        ("Broken/latin1 note.md", "not_utf8"),
        ("Broken/empty.md", "empty"),
    }
    journal = notes.filter(pl.col("path") == "Journal/2026-03-02.md").row(0, named=True)
    assert {"journal", "reflection", "reflection/work"} <= set(journal["tags"])
    assert journal["created"].isoformat().startswith("2026-03-02")
    assert "Jonas Berg" in journal["body"] and "%%" not in journal["body"]
    assert json.loads(journal["frontmatter"])["aliases"] == ["Monday March 2"]
    # The exact duplicate pair has the same content hash.
    hashes = dict(notes.select("path", "content_hash").iter_rows())
    assert hashes["Learnings/What I learned about saying no.md"] == hashes["Archive/Saying no.md"]


def test_edge_cases_are_quarantined_and_the_run_continues(tmp_path):
    vault = tmp_path / "vault"
    _write(vault, "good.md", GOOD)
    _write(vault, "bad yaml.md", "---\ntags: [a\nx: : y\n---\nbody\n")
    _write(vault, "latin.md", "caf\xe9 Malm\xf6".encode("latin-1"))
    _write(vault, "empty.md", b"")
    _write(vault, "big.md", "x" * 3_000_000)
    _write(vault, "image.png", b"\x89PNG")
    _write(vault, ".obsidian/app.json", "{}")
    _write(vault, "attachments/n.md", "ignored folder")
    deep = "/".join(f"d{i}" for i in range(6))
    _write(vault, f"{deep}/deep.md", "too deep")
    _write(vault, "d0/shallow.md", "fine")
    (vault / "loop").mkdir()
    os.symlink(vault, vault / "loop" / "back")
    notes, quarantine = read_vault(vault, IngestSettings(max_note_bytes=2_000_000, max_folder_depth=4))
    assert sorted(notes["path"]) == ["d0/shallow.md", "good.md"]
    reasons = {row["file"]: row["reason"] for row in quarantine.rows}
    assert reasons["bad yaml.md"] == "invalid_frontmatter"
    assert reasons["latin.md"] == "not_utf8"
    assert reasons["empty.md"] == "empty"
    assert reasons["big.md"] == "too_large"
    assert reasons["loop/back"] == "symlink_loop"
    assert reasons["d0/d1/d2/d3/d4"] == "too_deep"
    assert "3000000 bytes > ingest.max_note_bytes=2000000" in next(
        r["detail"] for r in quarantine.rows if r["file"] == "big.md"
    )
    good = notes.filter(pl.col("path") == "good.md").row(0, named=True)
    assert good["links"] == ["Other note"] and good["title"] == "good"


def test_created_falls_back_to_mtime(tmp_path):
    vault = tmp_path / "vault"
    path = _write(vault, "n.md", "# No frontmatter\ntext")
    os.utime(path, (1_700_000_000, 1_700_000_000))
    notes, _ = read_vault(vault, IngestSettings())
    row = notes.row(0, named=True)
    assert row["created"] == row["modified"] and row["created"].timestamp() == 1_700_000_000


def test_incremental_cache_parses_only_changed_notes(tmp_path):
    vault, cache = tmp_path / "vault", tmp_path / "cache"
    _write(vault, "a.md", GOOD)
    _write(vault, "b.md", "# B\ntext b")
    _write(vault, "broken.md", b"")
    first = VaultReadStats()
    notes1, q1 = read_vault(vault, IngestSettings(), cache, first)
    assert (first.parsed, first.cached) == (3, 0)
    second = VaultReadStats()
    notes2, q2 = read_vault(vault, IngestSettings(), cache, second)
    assert (second.parsed, second.cached) == (0, 3)
    assert notes2.equals(notes1) and q2.rows == q1.rows  # quarantined files stay quarantined from the cache
    _write(vault, "b.md", "# B\ntext b, edited and longer")
    third = VaultReadStats()
    notes3, _ = read_vault(vault, IngestSettings(), cache, third)
    assert (third.parsed, third.cached) == (1, 2)
    assert "edited" in notes3.filter(pl.col("path") == "b.md")["body"][0]


def test_cache_is_rebuilt_when_the_size_limit_changes(tmp_path):
    vault, cache = tmp_path / "vault", tmp_path / "cache"
    _write(vault, "big.md", "# Big\n" + "word " * 200)
    _, quarantine = read_vault(vault, IngestSettings(max_note_bytes=100), cache)
    assert [r["reason"] for r in quarantine.rows] == ["too_large"]
    stats = VaultReadStats()
    notes, quarantine = read_vault(vault, IngestSettings(max_note_bytes=10_000), cache, stats)
    assert notes["path"].to_list() == ["big.md"] and not quarantine.rows and stats.parsed == 1
