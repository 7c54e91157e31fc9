"""Prompts on real vaults: what `build_training_examples` makes of each vault, measured the same way for all.

Per vault: examples, share of each prompt shape (largest share is the one to watch: <= 60%), prompts shared by
different answers (target 0), template or plugin syntax left in prompts or replies (target 0: Templater `<% %>`,
core template `{{date}}`, `[[`/`]]`, embeds, `#card`/`#flashcards`, block ids, navigation arrows), what
boilerplate removal took out, and the time to build the examples. The hand grades (docs/dataset-quality.md)
are in benchmarks/README.md; they read the seeded sample `forge check-inputs --sample 40 --seed 1 --full` shows.

    PYTHONPATH=$PWD .venv/bin/python benchmarks/prompts_on_vaults.py <vault folder> [<vault folder> ...]

Writes benchmarks/results_prompts_on_vaults.json (vault folder names only, no note text).
"""

from __future__ import annotations

import json
import re
import sys
import time
from collections import defaultdict
from pathlib import Path

from forge_pipeline.ingest.conversations import conversations_frame
from forge_pipeline.ingest.examples import build_training_examples
from forge_pipeline.ingest.vault import VaultReadStats, read_vault
from forge_pipeline.settings import load_settings

SYNTAX = re.compile(
    r"<%|%>|\{\{\s*\w+\s*\}\}|#card\b|#flashcards|\[\[|\]\]|!\[|\s\^[a-z0-9]{6}$|\btp\.\w|<< |>>$", re.MULTILINE
)


def _prose(text: str) -> str:
    """Text without code and math, where `{{`, `[[` and `<%` are the subject being explained, not markup."""
    text = re.sub(r"(```|~~~).*?(\1|$)", " ", text, flags=re.DOTALL)
    text = re.sub(r"\$\$.*?\$\$", " ", text, flags=re.DOTALL)
    return re.sub(r"`[^`\n]*`|\$[^$\n]+\$", " ", text)


def measure(vault: Path) -> dict:
    settings = load_settings()
    stats = VaultReadStats()
    notes, _ = read_vault(vault, settings.ingest, stats=stats)
    details: dict = {}
    started = time.perf_counter()
    examples, quarantine = build_training_examples(notes, conversations_frame([]), settings, {}, stats.config, details)
    seconds = time.perf_counter() - started
    vault_rows = [r for r in examples.to_dicts() if r["source"] == "vault"]
    replies_of: dict[str, set[str]] = defaultdict(set)
    for row in vault_rows:
        replies_of[row["messages"][1]["content"]].add(row["messages"][2]["content"])
    shapes = details.get("prompt_shapes", {})
    total = max(sum(shapes.values()), 1)
    return {
        "notes": notes.height,
        "templates_skipped": stats.templates_skipped,
        "examples": len(vault_rows),
        "prompt_shapes": shapes,
        "largest_shape_share": round(max(shapes.values(), default=0) / total, 3),
        "prompts_shared_by_different_answers": sum(len(r) > 1 for r in replies_of.values()),
        "shared_prompts_resolved": details.get("shared_prompts", {}),
        "syntax_in_prompts": sum(bool(SYNTAX.search(r["messages"][1]["content"])) for r in vault_rows),
        "syntax_in_replies": sum(bool(SYNTAX.search(_prose(r["messages"][2]["content"]))) for r in vault_rows),
        "boilerplate_removed": details.get("boilerplate", {}),
        "quarantined_by_reason": dict(
            sorted(
                {
                    row["reason"]: sum(q["reason"] == row["reason"] for q in quarantine.rows) for row in quarantine.rows
                }.items()
            )
        ),
        "build_seconds": round(seconds, 2),
        "notes_per_second": round(notes.height / seconds, 1) if seconds else None,
    }


def main(folders: list[str]) -> None:
    results = {Path(folder).name: measure(Path(folder)) for folder in folders}
    out = Path(__file__).with_name("results_prompts_on_vaults.json")
    out.write_text(json.dumps(results, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    for name, result in results.items():
        print(
            name,
            json.dumps(
                {
                    k: result[k]
                    for k in (
                        "examples",
                        "largest_shape_share",
                        "prompts_shared_by_different_answers",
                        "syntax_in_prompts",
                        "syntax_in_replies",
                        "build_seconds",
                    )
                }
            ),
        )


if __name__ == "__main__":
    main(sys.argv[1:])
