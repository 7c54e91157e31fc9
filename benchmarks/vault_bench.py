"""Benchmark of a generated Obsidian vault through the real Dagster chain `*dataset_version` (ingest, PII scrub,
quality filter, dedup, curation, dataset version), full run and incremental re-run after editing 1% of notes.

    PYTHONPATH=. .venv/bin/python benchmarks/vault_bench.py --notes 20000 [--edit-share 0.01] [--out benchmarks/results_vault_bench.json]
    PYTHONPATH=. .venv/bin/python benchmarks/vault_bench.py --notes 20000 --chain ingest   # vault_notes +
                                                                                         # training_examples only

The vault is generated deterministically (seeded) in a temporary folder: date-named journal entries,
untagged topic notes with nested headings, reflection-tagged notes, plus the Obsidian constructs the cleaner
handles (wikilinks, heading/block links, block ids, embeds, callouts, inline and fenced code, math,
footnotes, comments, highlights, tasks, tables, Dataview fields). Each phase (full, then incremental) runs in
its own child process. `--chain dataset_version` (the default) materializes the selection `*dataset_version`
with the project's Definitions in process, as `forge demo --select '*dataset_version'` does, on a temporary
data root and Dagster instance; each step's time comes from the run's event log (STEP_START to
STEP_SUCCESS) and its peak memory from a sampler (every 0.2 s) of the resident memory of the process and
its children (spaCy's worker processes included) during that step. The incremental run reuses the first
run's data root: the parse, detection, filter and embedding caches.
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


class _MemorySampler:
    """Resident memory (MB) of this process plus its children, sampled every `interval` s in a thread."""

    def __init__(self, interval: float = 0.2):
        import threading

        import psutil

        self.process, self.interval, self.samples = psutil.Process(), interval, []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _rss(self) -> float:
        import psutil

        total = 0
        for proc in [self.process, *self.process.children(recursive=True)]:
            try:
                total += proc.memory_info().rss
            except psutil.Error:  # a worker that just exited
                pass
        return total / 1e6

    def _run(self) -> None:
        while not self._stop.is_set():
            self.samples.append((time.time(), self._rss()))
            self._stop.wait(self.interval)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()

    def peak(self, start: float, end: float) -> float:
        inside = [mb for t, mb in self.samples if start <= t <= end]
        return round(max(inside, default=0.0), 1)


def _chain_phase(vault: str, data_root: str) -> dict:
    """`*dataset_version` through Dagster in this process: time and peak memory per step, and the counts."""
    import dagster as dg

    from forge_pipeline.definitions import build_definitions

    definitions = build_definitions(data_root)
    job = definitions.resolve_implicit_global_asset_job_def()
    graph = definitions.resolve_asset_graph()
    chosen = dg.AssetSelection.from_string("*dataset_version").resolve(graph)
    selected = [k for k in graph.toposorted_asset_keys if k in chosen and graph.get(k).is_materializable]
    instance = dg.DagsterInstance.get()  # DAGSTER_HOME: the phase's own, set by _run_phase
    started = time.time()
    with _MemorySampler() as sampler:
        result = job.execute_in_process(
            instance=instance,
            asset_selection=selected,
            raise_on_error=False,
            run_config={"loggers": {"console": {"config": {"log_level": "CRITICAL"}}}},
        )
    total_s = time.time() - started
    begun, steps = {}, {}
    for entry in instance.all_logs(result.run_id):
        event = entry.dagster_event
        if event is None or not event.step_key:
            continue
        if event.event_type == dg.DagsterEventType.STEP_START:
            begun[event.step_key] = entry.timestamp
        elif event.event_type in (dg.DagsterEventType.STEP_SUCCESS, dg.DagsterEventType.STEP_FAILURE):
            start = begun.get(event.step_key, started)
            steps[event.step_key] = {
                "s": round(entry.timestamp - start, 2),
                "peak_rss_mb": sampler.peak(start, entry.timestamp),
                "ok": event.event_type == dg.DagsterEventType.STEP_SUCCESS,
            }
    counts = {}
    for key in selected:
        record = instance.get_latest_materialization_event(key)
        if record is not None and record.run_id == result.run_id:
            meta = record.asset_materialization.metadata
            counts[key.to_user_string()] = {
                name: meta[name].value
                for name in ("dagster/row_count", "examples", "messages", "messages_analyzed", "version", "rows")
                if name in meta
            }
    return {
        "success": result.success,
        "total_s": round(total_s, 2),
        "steps": steps,
        "counts": counts,
        "peak_rss_mb": sampler.peak(started, time.time()),
    }


def _run_phase(vault: Path, data_root: Path, chain: str) -> dict:
    home = data_root.parent / "dagster_home"
    home.mkdir(parents=True, exist_ok=True)
    conversations = data_root.parent / "no_conversations"  # the vault alone, not the shipped sample chats
    conversations.mkdir(parents=True, exist_ok=True)
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "DAGSTER_HOME": str(home),
        "FORGE_DATA_ROOT": str(data_root),
        "FORGE_VAULT_DIR": str(vault),
        "FORGE_CONVERSATIONS_DIR": str(conversations),
        "HF_HUB_OFFLINE": "1",
    }
    out = subprocess.run(
        [sys.executable, __file__, "--phase", chain, str(vault), str(data_root)],
        check=True,
        capture_output=True,
        text=True,
        env=env,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--notes", type=int, default=20_000)
    parser.add_argument("--edit-share", type=float, default=0.01)
    parser.add_argument("--out", type=Path, default=Path(__file__).with_name("results_vault_bench.json"))
    parser.add_argument(
        "--chain",
        choices=["dataset_version", "ingest"],
        default="dataset_version",
        help="dataset_version: the Dagster selection *dataset_version; ingest: read_vault + extraction only",
    )
    parser.add_argument("--phase", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.phase:
        chain, vault, data_root = args.phase
        print(json.dumps(_chain_phase(vault, data_root) if chain == "dataset_version" else _phase(vault, data_root)))
        return
    with tempfile.TemporaryDirectory() as tmp:
        vault, data_root = Path(tmp) / "vault", Path(tmp) / "data"
        started = time.perf_counter()
        paths = generate(vault, args.notes)
        generate_s = time.perf_counter() - started
        size_mb = sum(p.stat().st_size for p in paths) / 1e6
        full = _run_phase(vault, data_root, args.chain)
        rng = random.Random(1)
        edited = rng.sample(paths, max(1, int(len(paths) * args.edit_share)))
        for path in edited:
            path.write_text(path.read_text("utf-8") + f"\n{_sentence(rng)}\n", encoding="utf-8")
        incremental = _run_phase(vault, data_root, args.chain)
        result = {
            "chain": args.chain,
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
    args.out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
