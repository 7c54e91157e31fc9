"""Read an Obsidian vault into one row per note, quarantining what cannot be read.

Walk rules: folders named in `ignored_dirs` and hidden folders (`.obsidian`, `.trash`, `.quartz`, ...) are
skipped, the vault's templates folder (`.obsidian/templates.json`, Templater's settings; see vault_config.py) is
skipped with each of its notes quarantined as `template`, only `.md` files are read,
a folder reached twice through symlinks (same device+inode) is skipped, and folders deeper than
`max_folder_depth` are quarantined rather than followed (both guard against symlink loops).

Language: each note's clean text gets `language`, langdetect's ISO 639-1 code (seeded, so the same text
always gives the same code), or null when it has too few letters to judge. It is detected here, once, so the
prepare stage can route non-English text before any scrub runs; training examples carry it on.

Incremental: parsed rows are cached in `<cache>/vault_notes.json`, keyed by relative path with the file's
size and mtime_ns; an unchanged file is not re-read or re-parsed.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path

import polars as pl

from forge_pipeline.atomic import locked, write_json_atomic
from forge_pipeline.ingest.config import IngestSettings
from forge_pipeline.ingest.obsidian import FrontmatterError, parse_note
from forge_pipeline.ingest.vault_config import VaultConfig, read_vault_config
from forge_pipeline.language import detect_language
from forge_pipeline.records import ColumnType, Quarantine

NOTES_SCHEMA: dict[str, ColumnType] = {
    "path": pl.String,
    "title": pl.String,
    "frontmatter": pl.String,  # JSON object
    "tags": pl.List(pl.String),
    "links": pl.List(pl.String),
    "headings": pl.List(pl.String),
    "created": pl.Datetime("us", "UTC"),
    "modified": pl.Datetime("us", "UTC"),
    "body": pl.String,
    "content_hash": pl.String,
    "language": pl.String,  # ISO 639-1 code of the clean text (langdetect), null when too short to tell
}

CACHE_VERSION = 5  # 5: flashcard notes keep their `Q::A` lines, Markdown images removed, Excalidraw files out; 4: one detect_language rule with prepare; 3: cleaning rules for block ids, heading links, code spans, math, footnotes, fields


@dataclass
class VaultReadStats:
    files_seen: int = 0
    parsed: int = 0  # notes actually parsed this run (not served from the cache)
    cached: int = 0
    templates_skipped: int = 0  # notes in the vault's templates folder
    config: VaultConfig | None = None  # what .obsidian/ said (templates, daily notes, flashcards)


def _to_utc(value, fallback: datetime) -> datetime:
    """Frontmatter dates come as date, datetime or string; anything unreadable falls back to the mtime."""
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day, tzinfo=UTC)
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value.strip())
        except ValueError:
            return fallback
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    return fallback


def _quarantine_templates(folder: Path, vault: Path, quarantine: Quarantine) -> int:
    """Each note of the templates folder, quarantined with its reason (nothing dropped silently)."""
    count = 0
    for root, dirs, files in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(files):
            if name.lower().endswith(".md"):
                count += 1
                quarantine.add(
                    reason="template",
                    file=_printable((Path(root) / name).relative_to(vault).as_posix()),
                    detail="in the vault's templates folder (.obsidian templates settings): scaffolding, not writing",
                )
    return count


def _walk(vault: Path, settings: IngestSettings, quarantine: Quarantine, config: VaultConfig, stats: VaultReadStats):
    """Yield .md files under `vault`, guarding against loops and excessive depth."""
    ignored = set(settings.ignored_dirs)
    seen_dirs: set[tuple[int, int]] = set()
    stack: list[tuple[Path, int]] = [(vault, 0)]
    while stack:
        folder, depth = stack.pop()
        try:
            info = folder.stat()
        except OSError as err:
            quarantine.add(reason="unreadable_folder", detail=str(err), file=_printable(str(folder.relative_to(vault))))
            continue
        if (info.st_dev, info.st_ino) in seen_dirs:
            quarantine.add(
                reason="symlink_loop",
                detail="folder already visited (symlink loop); skipped",
                file=_printable(str(folder.relative_to(vault))),
            )
            continue
        seen_dirs.add((info.st_dev, info.st_ino))
        if depth > settings.max_folder_depth:
            quarantine.add(
                reason="too_deep",
                detail=f"folder depth {depth} exceeds ingest.max_folder_depth={settings.max_folder_depth}",
                file=_printable(str(folder.relative_to(vault))),
            )
            continue
        try:
            entries = sorted(os.scandir(folder), key=lambda e: e.name)
        except OSError as err:  # a folder that stat()s but cannot be listed must not stop the run
            quarantine.add(reason="unreadable_folder", detail=str(err), file=_printable(str(folder.relative_to(vault))))
            continue
        for entry in entries:
            if _safe(entry.is_dir):
                if entry.name in ignored or entry.name.startswith("."):
                    continue
                if config.is_template(Path(entry.path).relative_to(vault).as_posix()):
                    stats.templates_skipped += _quarantine_templates(Path(entry.path), vault, quarantine)
                    continue
                stack.append((Path(entry.path), depth + 1))
            elif entry.name.lower().endswith(".md"):
                if _safe(entry.is_file):
                    yield Path(entry.path)
                elif entry.is_symlink():
                    # A dangling (or self-referencing) link used to vanish without a trace.
                    quarantine.add(
                        reason="broken_symlink",
                        file=_printable(Path(entry.path).relative_to(vault).as_posix()),
                        detail=f"symlink to {_printable(os.readlink(entry.path))} does not lead to a file",
                    )


def _safe(check) -> bool:
    """DirEntry.is_dir()/is_file() raise ELOOP for a symlink that points at itself (`x -> x`); that crashed the
    whole walk. Such an entry is neither a folder nor a file."""
    try:
        return check()
    except OSError:
        return False


def _printable(name: str) -> str:
    """A file name that can be stored: names that are not UTF-8 come back from the OS with surrogate escapes,
    which Parquet and JSON writers refuse; show the bad bytes as U+FFFD instead."""
    return name.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


def _load_cache(path: Path, fingerprint: dict) -> dict:
    """Cached rows, or {} when the cache is missing, damaged, or built under other parse settings."""
    if not path.exists():
        return {}
    try:
        data = json.loads(path.read_text("utf-8"))
    except (OSError, ValueError):
        return {}  # a damaged cache only costs a re-parse
    if data.get("version") != CACHE_VERSION or data.get("settings") != fingerprint:
        return {}
    return data.get("notes", {})


def _parse_file(
    file: Path, rel: str, stat: os.stat_result, settings: IngestSettings, card_tags: tuple[str, ...] = ()
) -> dict | tuple[str, str]:
    """A note row (JSON-able) or (reason, detail) when the file must be quarantined."""
    if stat.st_size > settings.max_note_bytes:
        return "too_large", f"{stat.st_size} bytes > ingest.max_note_bytes={settings.max_note_bytes}"
    try:
        raw = file.read_bytes()
    except OSError as err:  # permission denied, I/O error: quarantine the note, not the run
        return "unreadable", f"cannot read the file: {err.strerror or err}"
    if not raw.strip():
        return "empty", "file is empty"
    if b"\0" in raw:
        # NUL never occurs in Markdown; a binary file (image, PDF, database) named .md decodes as "UTF-8" when
        # its bytes are low, and used to become a note full of control characters.
        return "binary", f"binary content (NUL byte at offset {raw.find(0)}); not a Markdown note"
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        return "not_utf8", f"not UTF-8 at byte {err.start}: {err.reason}; re-save the note as UTF-8"
    if rel.endswith(".excalidraw.md") or "excalidraw-plugin:" in text[:2000]:
        # the Excalidraw plugin stores drawings as notes: element lists and compressed JSON, not writing
        return "plugin_file", "an Excalidraw drawing stored as a note (plugin data, not writing)"
    try:
        parsed = parse_note(text, card_tags)
    except FrontmatterError as err:
        return "invalid_frontmatter", str(err)
    mtime = datetime.fromtimestamp(stat.st_mtime, tz=UTC)
    front = parsed["frontmatter"]
    created = _to_utc(front.get("created", front.get("date")), mtime)
    return {
        "path": rel,
        "title": str(front.get("title") or file.stem),
        "frontmatter": json.dumps(front, ensure_ascii=False, default=str, sort_keys=True),
        "tags": parsed["tags"],
        "links": parsed["links"],
        "headings": parsed["headings"],
        "created": created.astimezone(UTC).isoformat(),
        "modified": mtime.isoformat(),
        "body": parsed["body"],
        "content_hash": hashlib.sha256(raw).hexdigest(),
        # Detected here, once per note content: the parse cache keeps it, so unchanged notes are not re-judged.
        "language": detect_language(parsed["body"]),
    }


def read_vault(
    vault: Path, settings: IngestSettings, cache_dir: Path | None = None, stats: VaultReadStats | None = None
) -> tuple[pl.DataFrame, Quarantine]:
    """All readable notes of `vault` as a frame with NOTES_SCHEMA (sorted by path), plus the quarantine."""
    vault = Path(vault)
    if not vault.is_dir():
        raise FileNotFoundError(f"vault folder {vault} does not exist; set vault_dir / FORGE_VAULT_DIR")
    stats = stats if stats is not None else VaultReadStats()
    quarantine = Quarantine("vault_notes")
    cache_path = cache_dir / "vault_notes.json" if cache_dir else None
    stats.config = config = read_vault_config(vault)
    card_tags = tuple(config.flashcards.tags)
    # A changed size limit must re-judge notes the cache remembers as too large (or not); changed flashcard
    # tags change which notes keep their card lines.
    fingerprint = {"max_note_bytes": settings.max_note_bytes, "card_tags": list(card_tags)}
    cache = _load_cache(cache_path, fingerprint) if cache_path else {}
    new_cache: dict[str, dict] = {}
    rows: list[dict] = []
    for file in _walk(vault, settings, quarantine, config, stats):
        rel = file.relative_to(vault).as_posix()
        stats.files_seen += 1
        if _printable(rel) != rel:
            quarantine.add(
                reason="bad_filename", file=_printable(rel), detail="the file name is not valid UTF-8; rename the note"
            )
            continue
        try:
            stat = file.stat()
        except OSError as err:
            quarantine.add(reason="unreadable", detail=str(err), file=rel)
            continue
        key = f"{stat.st_size}:{stat.st_mtime_ns}"
        hit = cache.get(rel)
        if hit and hit["key"] == key:
            stats.cached += 1
            result = hit["result"]
        else:
            stats.parsed += 1
            result = _parse_file(file, rel, stat, settings, card_tags)
            if isinstance(result, tuple):
                result = {"quarantine": list(result)}
        if result.get("quarantine", [None])[0] != "unreadable":
            # Not cached: fixing a permission does not change size or mtime, so it would stay quarantined.
            new_cache[rel] = {"key": key, "result": result}
        if "quarantine" in result:
            reason, detail = result["quarantine"]
            quarantine.add(reason=reason, detail=detail, file=rel, payload=None)
        else:
            rows.append(result)
    if cache_path:
        with locked(cache_path):
            write_json_atomic(cache_path, {"version": CACHE_VERSION, "settings": fingerprint, "notes": new_cache})
    return notes_frame(rows), quarantine


def notes_frame(rows: list[dict]) -> pl.DataFrame:
    if not rows:
        return pl.DataFrame(schema=NOTES_SCHEMA)
    frame = pl.DataFrame(rows, schema_overrides={"created": pl.String, "modified": pl.String}, infer_schema_length=None)
    frame = frame.with_columns(
        pl.col("created").str.to_datetime(time_zone="UTC", time_unit="us"),
        pl.col("modified").str.to_datetime(time_zone="UTC", time_unit="us"),
    )
    return frame.select([pl.col(n).cast(t) for n, t in NOTES_SCHEMA.items()]).sort("path")
