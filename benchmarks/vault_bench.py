"""Benchmark of ingest on a generated Obsidian vault: reading + cleaning + language detection (vault_notes)
and example extraction (training_examples), full run and incremental re-run after editing 1% of notes.

    .venv/bin/python benchmarks/vault_bench.py --notes 20000 [--edit-share 0.01] [--out result.json]

The vault is generated deterministically (seeded) in a temporary folder: date-named journal entries,
untagged topic notes with nested headings, reflection-tagged notes, plus the Obsidian constructs the cleaner
handles (wikilinks, heading/block links, block ids, embeds, callouts, inline and fenced code, math,
footnotes, comments, highlights, tasks, tables, Dataview fields). Each phase runs in its own child process
so its peak RSS (ru_maxrss) is its own. The incremental run uses the parse cache of the full run.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

WORDS = (
    "the a system note garden compiler meeting project budget travel recipe coffee weekend release review "
    "idea question answer model data test deploy music book friend plan morning evening write read improve "
    "quickly carefully because while after before during small large early late new old team decided "
    "learned worried hoped tried failed shipped moved asked waited slept walked cooked"
).split()
TOPICS = (
    "Postgres locks",
    "Sourdough",
    "Team rituals",
    "Marathon training",
    "Home network",
    "Reading habits",
    "Code review",
    "Hiring",
    "Gardening",
    "Budgeting",
    "Rust ownership",
    "Incident response",
)


def _sentence(rng: random.Random) -> str:
    words = [rng.choice(WORDS) for _ in range(rng.randint(8, 18))]
    return " ".join(words).capitalize() + "."


def _paragraph(rng: random.Random, n: int | None = None) -> str:
    return " ".join(_sentence(rng) for _ in range(n or rng.randint(2, 5)))


def _note(rng: random.Random, index: int) -> tuple[str, str]:
    kind = index % 10
    extras = [
        f"See [[{rng.choice(TOPICS)}]] and [[#Details]] ^b{index:06x}",
        f"> [!tip]- A ==tip== about [[{rng.choice(TOPICS)}|this]]\n> {_sentence(rng)}",
        "Use `[[not a link]] ==x==` here. $E = mc^2$ holds.[^1]\n\n[^1]: " + _sentence(rng),
        "```python\n# not a heading\nprint('hi')\n```",
        "- [ ] follow up\n- [x] done it %%private%%",
        "| a | b |\n|---|---|\n| 1 | 2 |",
        f"mood:: calm\n![[{rng.choice(TOPICS)}#Details]]",
    ]
    if kind < 3:  # journal entry named by its date
        day = f"2025-{1 + index % 12:02d}-{1 + index % 28:02d}"
        body = f"# {day}\n\n{_paragraph(rng)}\n\n{rng.choice(extras)}\n\n{_paragraph(rng)}\n"
        return f"Journal/{index:06d}/{day}.md", body  # one folder per entry: the same date recurs
    if kind < 5:  # reflection-tagged note
        title = f"What I learned about {rng.choice(TOPICS).lower()} {index}"
        body = (
            f"---\ntags: [learning, reflection/work]\ncreated: 2025-03-04\n---\n# {title}\n\n"
            f"{_paragraph(rng)}\n\n{rng.choice(extras)}\n"
        )
        return f"Learnings/{title}.md", body
    title = f"{rng.choice(TOPICS)} {index}"  # untagged topic note with nested headings
    body = (
        f"---\naliases: [{title} notes]\n---\n# {title}\n\n{_paragraph(rng)}\n\n## Why it matters\n\n"
        f"{_paragraph(rng)}\n\n### Details\n\n{_paragraph(rng)}\n\n{rng.choice(extras)}\n\n## 1.2.3\n\n"
        f"{_paragraph(rng, 1)}\n"
    )
    return f"Topics/{index % 50:02d}/{title}.md", body


def generate(vault: Path, notes: int, seed: int = 0) -> list[Path]:
    rng = random.Random(seed)
    paths = []
    for index in range(notes):
        rel, body = _note(rng, index)
        path = vault / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(body, encoding="utf-8")
        paths.append(path)
    return paths


def _phase(vault: str, data_root: str) -> dict:
    """One ingest run (in this process): vault_notes then training_examples, with timings and peak RSS."""
    from forge_pipeline.ingest.conversations import conversations_frame
    from forge_pipeline.ingest.examples import build_training_examples
    from forge_pipeline.ingest.vault import VaultReadStats, read_vault
    from forge_pipeline.settings import load_settings

    settings = load_settings(data_root=Path(data_root), vault_dir=Path(vault))
    settings.paths.ensure()
    stats = VaultReadStats()
    started = time.perf_counter()
    notes, quarantine = read_vault(settings.vault_dir, settings.ingest, settings.paths.cache, stats)
    read_s = time.perf_counter() - started
    counts: dict = {}
    started = time.perf_counter()
    examples, dropped = build_training_examples(notes, conversations_frame([]), settings, counts)
    examples_s = time.perf_counter() - started
    return {
        "read_s": round(read_s, 2),
        "examples_s": round(examples_s, 2),
        "total_s": round(read_s + examples_s, 2),
        "notes": notes.height,
        "parsed": stats.parsed,
        "from_cache": stats.cached,
        "quarantined_notes": len(quarantine.rows),
        "examples": examples.height,
        "by_strategy": counts,
        "examples_dropped": dropped.reason_counts(),
        "examples_per_note": round(examples.height / max(notes.height, 1), 2),
        "languages": dict(notes["language"].value_counts().iter_rows()),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }


def _run_phase(vault: Path, data_root: Path) -> dict:
    out = subprocess.run(
        [sys.executable, __file__, "--phase", str(vault), str(data_root)],
        check=True,
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--notes", type=int, default=20_000)
    parser.add_argument("--edit-share", type=float, default=0.01)
    parser.add_argument("--out", type=Path)
    parser.add_argument("--phase", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.phase:
        print(json.dumps(_phase(*args.phase)))
        return
    with tempfile.TemporaryDirectory() as tmp:
        vault, data_root = Path(tmp) / "vault", Path(tmp) / "data"
        started = time.perf_counter()
        paths = generate(vault, args.notes)
        generate_s = time.perf_counter() - started
        size_mb = sum(p.stat().st_size for p in paths) / 1e6
        full = _run_phase(vault, data_root)
        rng = random.Random(1)
        edited = rng.sample(paths, max(1, int(len(paths) * args.edit_share)))
        for path in edited:
            path.write_text(path.read_text("utf-8") + f"\n{_sentence(rng)}\n", encoding="utf-8")
        incremental = _run_phase(vault, data_root)
        result = {
            "notes": args.notes,
            "vault_mb": round(size_mb, 1),
            "generate_s": round(generate_s, 1),
            "edited_notes": len(edited),
            "full": full,
            "incremental": incremental,
            "incremental_over_full": round(incremental["total_s"] / full["total_s"], 3),
            "cpus": os.cpu_count(),
            "load_avg": os.getloadavg(),
        }
    print(json.dumps(result, indent=2))
    if args.out:
        args.out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
