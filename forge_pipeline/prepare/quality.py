"""Quality filters with documented thresholds (settings.prepare.filter).

Checks, in this order; the first failing one is the example's quarantine reason:

- `empty_assistant_turn`: an assistant message whose content is empty/whitespace (nothing to learn from;
  a model trained on it learns to answer with nothing). Also `no_messages` for an empty conversation.
- `too_short` / `too_long`: token count of all contents below `min_tokens` (default 8) or above
  `max_tokens` (default 4096). Tokens are approximated as `len(re.findall(r"\\w+|[^\\w\\s]", text))`
  (words and punctuation marks); for English that is within ~20% of BPE counts and needs no model.
- `mostly_non_text`: the share of non-empty lines that are code (inside ``` fences), table rows (`|...|`)
  or bare links/list-of-links exceeds `max_non_text_ratio` (default 0.6).
- `repeated_lines`: share of non-empty lines that repeat an earlier line exceeds `max_repeated_line_ratio`
  (default 0.5); catches templated or looping text. Only for texts with >= 4 lines.
- `language`: langdetect (seeded, so deterministic) on the prose (non-code, placeholders removed) must give
  one of `languages`; texts with fewer than `MIN_LANGUAGE_CHARS` letters skip the check (detection on a few
  words is noise).
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import polars as pl

from forge_pipeline.atomic import atomic_path
from forge_pipeline.language import MIN_LANGUAGE_CHARS, detect_language  # noqa: F401  (re-exported: its callers import it from here)
from forge_pipeline.prepare.config import FilterSettings
from forge_pipeline.records import Quarantine, example_text

TOKEN_RE = re.compile(r"\w+|[^\w\s]")
LINK_LINE_RE = re.compile(r"^\s*(?:[-*+]\s*|\d+\.\s*)?(?:\[[^\]]*\]\([^)]*\)|\[\[[^\]]*\]\]|<?https?://\S+>?)\s*$")
TABLE_LINE_RE = re.compile(r"^\s*\|.*\|\s*$")
PLACEHOLDER_RE = re.compile(r"<[A-Z_]+_\d+>")


def count_tokens(text: str) -> int:
    return len(TOKEN_RE.findall(text))


def line_stats(text: str) -> tuple[float, float, str]:
    """(non-text ratio, repeated-line ratio, prose) over the non-empty lines of `text`."""
    in_fence, non_text, seen, repeats, total, prose = False, 0, set(), 0, 0, []
    for line in text.splitlines():
        stripped = line.strip()
        if stripped.startswith("```"):
            in_fence = not in_fence
            non_text += 1
            total += 1
            continue
        if not stripped:
            continue
        total += 1
        if in_fence or TABLE_LINE_RE.match(line) or LINK_LINE_RE.match(line):
            non_text += 1
        else:
            prose.append(stripped)
        key = " ".join(stripped.lower().split())
        if key in seen:
            repeats += 1
        seen.add(key)
    if not total:
        return 0.0, 0.0, ""
    repeated = repeats / total if total >= 4 else 0.0
    return non_text / total, repeated, "\n".join(prose)


def check_example(messages: list[dict], settings: FilterSettings) -> tuple[str, str] | None:
    """(reason, detail) when the example should be dropped, else None."""
    if not messages:
        return "no_messages", "the example has no messages"
    for i, m in enumerate(messages):
        if m["role"] == "assistant" and not (m.get("content") or "").strip():
            return "empty_assistant_turn", f"message {i} (assistant) is empty"
    text = example_text({"role": m["role"], "content": m.get("content") or ""} for m in messages)
    tokens = count_tokens(text)
    if tokens < settings.min_tokens:
        return "too_short", f"{tokens} tokens < min_tokens {settings.min_tokens}"
    if tokens > settings.max_tokens:
        return "too_long", f"{tokens} tokens > max_tokens {settings.max_tokens}"
    non_text, repeated, prose = line_stats(text)
    if non_text > settings.max_non_text_ratio:
        return "mostly_non_text", f"non-text line ratio {non_text:.2f} > {settings.max_non_text_ratio}"
    if repeated > settings.max_repeated_line_ratio:
        return "repeated_lines", f"repeated line ratio {repeated:.2f} > {settings.max_repeated_line_ratio}"
    if settings.languages:
        lang = detect_language(PLACEHOLDER_RE.sub(" ", prose))
        if lang is not None and lang not in settings.languages:
            return "language", f"detected language {lang!r} not in {settings.languages}"
    return None


VERDICT_SCHEMA = {"example_id": pl.String, "reason": pl.String, "detail": pl.String}


def filter_examples(
    examples: pl.DataFrame, settings: FilterSettings, stage: str = "filtered_examples", cache_dir: Path | None = None
) -> tuple[pl.DataFrame, Quarantine]:
    """Keep the examples that pass every check; the rest go to the quarantine with their reason.

    A verdict depends only on the content (example_id is its hash) and the settings, so with `cache_dir`
    verdicts are reused across runs (langdetect is the slow part) and only new examples are checked.
    """
    cache_path, cached = None, {}
    if cache_dir is not None:
        sig = hashlib.sha256(settings.model_dump_json().encode()).hexdigest()[:16]
        cache_path = Path(cache_dir) / "filter" / f"verdicts-{sig}.parquet"
        if cache_path.exists():
            cached = {r[0]: (r[1], r[2]) for r in pl.read_parquet(cache_path).iter_rows()}
    quarantine, keep, fresh = Quarantine(stage), [], 0
    for row in examples.select("example_id", "messages", "source_path").iter_rows(named=True):
        if row["example_id"] in cached:
            reason, detail = cached[row["example_id"]]
            verdict = (reason, detail) if reason else None
        else:
            verdict = check_example(row["messages"] or [], settings)
            cached[row["example_id"]] = verdict or (None, None)
            fresh += 1
        keep.append(verdict is None)
        if verdict:
            quarantine.add(
                reason=verdict[0],
                detail=verdict[1],
                file=row["source_path"],
                record_id=row["example_id"],
                payload={"messages": row["messages"]},
            )
    if cache_path is not None and fresh:
        cache_path.parent.mkdir(parents=True, exist_ok=True)
        frame = pl.DataFrame([(k, r, d) for k, (r, d) in cached.items()], schema=VERDICT_SCHEMA, orient="row")
        with atomic_path(cache_path) as tmp:
            frame.write_parquet(tmp)
    return examples.filter(pl.Series(keep, dtype=pl.Boolean)), quarantine
