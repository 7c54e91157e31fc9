"""Benchmark of the prepare steps (scrub, filter, dedup) on generated examples.

    .venv/bin/python benchmarks/prepare_bench.py --examples 10000 [--plain-sample 300] [--out result.json]
        [--spacy-model NAME_OR_FOLDER]

Reports examples/s per step, peak RSS, presidio's plain one-document-at-a-time `analyze` loop vs the
batched path on the same sample (with a check that detections are identical), and the cost of an
incremental run that adds 1% new examples (scrub detections and embeddings cached, dedup searches only
the new examples) relative to the full run. Everything runs in a temporary data root. The examples carry the
`language` column that training_examples gives them in the pipeline (that detection is timed apart, as ingest's).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import random
import resource
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import polars as pl  # noqa: E402

from forge_pipeline.prepare.config import PrepareSettings  # noqa: E402
from forge_pipeline.records import example_id_for, examples_frame  # noqa: E402

WORDS = (
    "the a system note garden compiler meeting project budget travel recipe coffee weekend release "
    "review idea question answer model data test deploy music book friend plan morning evening write "
    "read improve quickly carefully because while after before during small large early late new old"
).split()


def _load_generator():
    spec = importlib.util.spec_from_file_location("make_set", ROOT / "data" / "pii_eval" / "make_set.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def generate(n: int, seed: int, start: datetime, id_prefix: str = "") -> pl.DataFrame:
    """n chats: a user message (PII template or a plain question) and a 20-60 word answer; ~3% exact and
    ~3% near duplicates of earlier chats."""
    gen, rng, rows = _load_generator(), random.Random(seed), []
    for i in range(n):
        r = rng.random()
        if rows and r < 0.03:
            messages = [dict(m) for m in rng.choice(rows)["messages"]]
        elif rows and r < 0.06:
            messages = [dict(m) for m in rng.choice(rows)["messages"]]
            messages[-1]["content"] = messages[-1]["content"].rstrip(".") + " indeed."
        else:
            if rng.random() < 0.6:
                user, _ = gen.fill(rng.choice(gen.TEMPLATES), rng)
            else:
                user = rng.choice(gen.NEGATIVES) + f" {id_prefix}{i}"
            answer = " ".join(rng.choice(WORDS) for _ in range(rng.randint(20, 60))).capitalize() + "."
            messages = [{"role": "user", "content": user}, {"role": "assistant", "content": answer}]
        rows.append(
            {
                "example_id": example_id_for(messages),
                "messages": messages,
                "source": "conversation",
                "source_path": f"bench:{id_prefix}{i}",
                "conversation_id": f"{id_prefix}{i}",
                "created_at": start + timedelta(seconds=i),
                "tags": [],
            }
        )
    return examples_frame(rows)


def with_ingest_language(frame: pl.DataFrame) -> tuple[pl.DataFrame, float]:
    """The `language` column training_examples gives every example (ingest's rule for a conversation, as in
    build_training_examples), and the seconds it took. The scrub's language gate reads that column, as in the
    pipeline; a frame without it would make the scrub do ingest's work."""
    from forge_pipeline.ingest.examples import conversation_language

    t = time.perf_counter()
    languages = [conversation_language(messages) for messages in frame["messages"].to_list()]
    return frame.with_columns(pl.Series("language", languages, dtype=pl.String)), time.perf_counter() - t


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_steps(frame, prepare, analyzer, embedder, cache_dir) -> dict:
    from forge_pipeline.prepare.dedup import deduplicate
    from forge_pipeline.prepare.pii import scrub_examples
    from forge_pipeline.prepare.quality import filter_examples

    out = {}
    t = time.perf_counter()
    scrubbed, rep = scrub_examples(
        frame, prepare.scrub, analyzer, cache_dir=cache_dir, languages=prepare.filter.languages
    )
    out["scrub_s"] = time.perf_counter() - t
    out["messages_analyzed"] = rep.messages_analyzed
    t = time.perf_counter()
    kept, q = filter_examples(scrubbed, prepare.filter, cache_dir=cache_dir)
    out["filter_s"] = time.perf_counter() - t
    out["filter_dropped"] = q.reason_counts()
    t = time.perf_counter()
    before = embedder.texts_encoded
    deduped, dq, drep = deduplicate(kept, prepare.dedup, embedder, cache_dir)
    out["dedup_s"] = time.perf_counter() - t
    out["texts_embedded"] = embedder.texts_encoded - before
    out["dedup"] = drep.as_dict()
    out["total_s"] = out["scrub_s"] + out["filter_s"] + out["dedup_s"]
    out["peak_rss_mb"] = round(peak_mb())
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--examples", type=int, default=10_000)
    ap.add_argument("--plain-sample", type=int, default=300, help="examples for the plain-loop comparison")
    ap.add_argument("--out", type=Path, default=Path(__file__).with_name("results_prepare_bench.json"))
    ap.add_argument("--n-process", type=int, default=2, help="spaCy worker processes for the batched scrub")
    ap.add_argument("--spacy-model", default=None, help="spaCy package or model folder (default: the setting's)")
    args = ap.parse_args()

    from forge_pipeline.prepare.embeddings import Embedder
    from forge_pipeline.prepare.pii import analyze_texts, build_analyzer

    prepare = PrepareSettings()
    prepare.scrub.n_process = args.n_process
    if args.spacy_model:
        prepare.scrub.spacy_model = args.spacy_model
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    frame, language_s = with_ingest_language(generate(args.examples, seed=7, start=t0))
    t = time.perf_counter()
    analyzer = build_analyzer(prepare.scrub.spacy_model, prepare.scrub)
    embedder = Embedder(prepare.dedup.embedding_model, prepare.dedup.batch_size)
    _ = embedder.model
    result = {
        "examples": args.examples,
        "spacy_model": Path(prepare.scrub.spacy_model).name,
        "startup_s": round(time.perf_counter() - t, 1),
        "ingest_language_s": round(language_s, 1),  # training_examples' work, before the scrub
    }

    # plain loop vs batched path on the same sample: throughput and identical detections
    sample = [m["content"] for msgs in frame.head(args.plain_sample)["messages"] for m in msgs]
    t = time.perf_counter()
    plain = analyze_texts(analyzer, sample, prepare.scrub, fast=False)
    plain_s = time.perf_counter() - t
    result["plain_vs_batched"] = {"messages": len(sample), "plain_msgs_per_s": round(len(sample) / plain_s, 1)}
    for n_proc in sorted({1, args.n_process}):
        t = time.perf_counter()
        fast = analyze_texts(analyzer, sample, prepare.scrub.model_copy(update={"n_process": n_proc}), fast=True)
        fast_s = time.perf_counter() - t
        result["plain_vs_batched"][f"n_process_{n_proc}"] = {
            "batched_msgs_per_s": round(len(sample) / fast_s, 1),
            "speedup": round(plain_s / fast_s, 2),
            "same_detections": plain == fast,
        }

    with tempfile.TemporaryDirectory() as tmp:
        full = run_steps(frame, prepare, analyzer, embedder, Path(tmp))
        new, _ = with_ingest_language(
            generate(max(1, args.examples // 100), seed=8, start=t0 + timedelta(days=30), id_prefix="new")
        )
        inc = run_steps(pl.concat([frame, new]), prepare, analyzer, embedder, Path(tmp))
    n = args.examples
    result["full"] = {
        **full,
        **{f"{k}_examples_per_s": round(n / full[f"{k}_s"], 1) for k in ("scrub", "filter", "dedup")},
    }
    result["full"]["pipeline_examples_per_s"] = round(n / full["total_s"], 1)
    # the full run's scrub throughput vs the plain loop (messages/s, 2 messages per example)
    result["scrub_vs_plain_loop"] = round((2 * n / full["scrub_s"]) / result["plain_vs_batched"]["plain_msgs_per_s"], 2)
    result["incremental_1pct"] = {**inc, "cost_vs_full": round(inc["total_s"] / full["total_s"], 3)}
    text = json.dumps(result, indent=2, default=str)
    print(text)
    args.out.write_text(text)


if __name__ == "__main__":
    main()
