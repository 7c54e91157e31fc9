"""Benchmark of the embedding index: full build and incremental update at two sizes, query latency and
recall@10 of the FAISS index type against exact search.

    .venv/bin/python benchmarks/embedding_bench.py [--sizes 10000 100000] [--minilm-sample 1000] [--out f.json]

Embedding 100k chunks with MiniLM takes 16-100 minutes on this 2-core VM, so the build and update timings use
a STAND-IN encoder (feature hashing of words into 384 dimensions, L2-normalised; microseconds per text)
through the real code path (chunking, shared embedding cache, FAISS, Parquet, atomic version folders). The
real MiniLM throughput is measured on a sample, and each timing is also reported with the stand-in's
encoding time replaced by MiniLM's measured rate (labelled `*_minilm_estimate_s`). Query latency is the
FAISS search plus result assembly (stand-in query encoding), with MiniLM's single-query encoding latency
measured separately. Recall@10 compares the HNSW index against exact inner-product search (IndexFlatIP)
on the same vectors.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import sys
import tempfile
import time
import zlib
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from forge_pipeline.embed.config import EmbedSettings  # noqa: E402
from forge_pipeline.embed.index import build_embedding_index, make_faiss_index  # noqa: E402
from forge_pipeline.embed.search import search  # noqa: E402
from forge_pipeline.embed.store import load_current  # noqa: E402

DIM = 384


class HashingStandIn:
    """Bag of words hashed into 384 signed buckets: fast, deterministic, similar texts get similar vectors."""

    backend = "hashing-stand-in"
    name = "hashing-stand-in-384"
    model_path = "benchmark:hashing-stand-in-384"
    dimension = DIM

    def __init__(self):
        self.texts_encoded = 0
        self.seconds = 0.0

    def encode(self, texts: list[str]) -> np.ndarray:
        started = time.perf_counter()
        out = np.zeros((len(texts), DIM), dtype=np.float32)
        for row, text in enumerate(texts):
            for word in text.lower().split():
                h = zlib.crc32(word.encode())
                out[row, h % DIM] += 1.0 if (h >> 16) & 1 else -1.0
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        out /= np.where(norms == 0, 1.0, norms)
        self.texts_encoded += len(texts)
        self.seconds += time.perf_counter() - started
        return out


def vocabulary(rng: random.Random, n: int = 5000) -> list[str]:
    """Whole English words from MiniLM's own vocabulary, so a generated note has about as many tokens as
    words (~70), like real notes; made-up words split into many word pieces and slow the model down."""
    from forge_pipeline.prepare.embeddings import default_model_path

    words = [
        w
        for w in (Path(default_model_path()) / "vocab.txt").read_text("utf-8").split()
        if w.isalpha() and w.isascii() and len(w) >= 3
    ]
    return rng.sample(words, min(n, len(words)))


def make_records(n: int, rng: random.Random, vocab: list[str], prefix: str = "n") -> list[dict]:
    cumulative = list(np.cumsum([1.0 / (rank + 1) for rank in range(len(vocab))]))  # Zipf-like frequencies
    records = []
    for i in range(n):
        words = rng.choices(vocab, cum_weights=cumulative, k=rng.randint(40, 80))
        records.append(
            {
                "example_id": f"{prefix}{i}",
                "source": "vault",
                "source_path": f"notes/{prefix}{i}.md",
                "conversation_id": None,
                "created_at": "2026-01-01T00:00:00+00:00",
                "tags": [],
                "messages": [
                    {"role": "user", "content": f"Note {prefix}{i}"},
                    {"role": "assistant", "content": " ".join(words)},
                ],
            }
        )
    return records


def minilm_rate(sample: int, rng: random.Random, vocab: list[str]) -> dict:
    from forge_pipeline.embed.backends import SentenceTransformerBackend
    from forge_pipeline.embed.chunking import chunk_messages

    backend = SentenceTransformerBackend()
    texts = [chunk_messages(r["messages"], 1000)[0].text for r in make_records(sample, rng, vocab, "m")]
    backend.encode(texts[:64])  # warm-up: model load and first batch
    started = time.perf_counter()
    backend.encode(texts)
    rate = sample / (time.perf_counter() - started)
    latencies = []
    for text in texts[:20]:
        t = time.perf_counter()
        backend.encode([text[:80]])
        latencies.append((time.perf_counter() - t) * 1000)
    return {
        "chunks_per_s": round(rate, 1),
        "sample": sample,
        "query_encode_ms_p50": round(float(np.percentile(latencies, 50)), 2),
        "query_encode_ms_p99": round(float(np.percentile(latencies, 99)), 2),
    }


def timed_build(records, version, root, backend, settings) -> dict:
    encode_before = backend.seconds
    started = time.perf_counter()
    _, meta, report = build_embedding_index(records, version, root / "embeddings", backend, root / "cache", settings)
    total = time.perf_counter() - started
    encode = backend.seconds - encode_before
    return {
        "seconds": round(total, 2),
        "stand_in_encode_s": round(encode, 2),
        "chunks": report.chunks,
        "texts_embedded": report.texts_embedded,
        "reused_from_previous": report.reused_from_previous,
        "added_chunks": report.added_chunks,
        "removed_chunks": report.removed_chunks,
        "index_type": meta["index_type"],
        "_overhead_s": total - encode,
    }


REFERENCE_MINILM_RATE = 103.0  # chunks/s, quiet VM, 69-token texts, batch 64 (benchmarks/README.md)


def with_minilm_estimate(result: dict, rate: float) -> dict:
    overhead = result.pop("_overhead_s")
    result["minilm_estimate_s"] = round(overhead + result["texts_embedded"] / rate, 1)
    result["minilm_estimate_at_reference_rate_s"] = round(
        overhead + result["texts_embedded"] / REFERENCE_MINILM_RATE, 1
    )
    return result


def query_latency(root: Path, backend, queries: list[str], k: int = 10, faiss_index=None) -> dict:
    version = load_current(root / "embeddings")
    if faiss_index is not None:  # the same vectors under another index type
        version.faiss_index = faiss_index
        version.meta["index_type"] = "hnsw" if hasattr(faiss_index, "hnsw") else "flat"
    search(version, backend, queries[0], k)  # warm-up
    latencies = []
    for query in queries:
        started = time.perf_counter()
        search(version, backend, query, k)
        latencies.append((time.perf_counter() - started) * 1000)
    return {
        "queries": len(queries),
        "k": k,
        "index_type": version.meta["index_type"],
        "p50_ms": round(float(np.percentile(latencies, 50)), 3),
        "p99_ms": round(float(np.percentile(latencies, 99)), 3),
    }


def recall_at_10(vectors: np.ndarray, query_vectors: np.ndarray, settings: EmbedSettings, hnsw=None) -> dict:
    import faiss

    exact = faiss.IndexFlatIP(vectors.shape[1])
    exact.add(vectors)
    _, truth = exact.search(query_vectors, 10)
    out = {"vectors": len(vectors), "queries": len(query_vectors)}
    if hnsw is None:
        started = time.perf_counter()
        hnsw = make_faiss_index(vectors, "hnsw", settings)
        out["hnsw_build_s"] = round(time.perf_counter() - started, 2)
    for ef in sorted({16, 32, settings.hnsw_ef_search, 128, 256}):
        hnsw.hnsw.efSearch = ef
        started = time.perf_counter()
        _, found = hnsw.search(query_vectors, 10)
        batch_ms = (time.perf_counter() - started) * 1000 / len(query_vectors)
        recall = float(np.mean([len(set(t) & set(f)) / 10 for t, f in zip(truth.tolist(), found.tolist())]))
        out[f"ef_search_{ef}"] = {"recall_at_10": round(recall, 4), "ms_per_query_batched": round(batch_ms, 4)}
    hnsw.hnsw.efSearch = settings.hnsw_ef_search
    started = time.perf_counter()
    exact.search(query_vectors, 10)
    out["flat_ms_per_query_batched"] = round((time.perf_counter() - started) * 1000 / len(query_vectors), 4)
    return out, hnsw


def minilm_recall(sample: int, n_queries: int, rng: random.Random, vocab: list[str], settings: EmbedSettings) -> dict:
    """HNSW vs exact on REAL MiniLM vectors (the stand-in's hashed vectors have no topical structure, the
    hardest case for a graph index): `sample` generated notes embedded, queried with short phrases."""
    from forge_pipeline.embed.backends import SentenceTransformerBackend
    from forge_pipeline.embed.chunking import chunk_messages

    backend = SentenceTransformerBackend()
    texts = [chunk_messages(r["messages"], 1000)[0].text for r in make_records(sample, rng, vocab, "r")]
    vectors = backend.encode(texts)
    queries = backend.encode([" ".join(rng.choices(vocab[:2000], k=6)) for _ in range(n_queries)])
    return recall_at_10(vectors, queries, settings)[0]


def run_size(
    n: int, rate: float, rng: random.Random, vocab: list[str], settings: EmbedSettings, n_queries: int
) -> dict:
    backend = HashingStandIn()
    records = make_records(n, rng, vocab)
    with tempfile.TemporaryDirectory(prefix="forge-embed-bench-") as tmp:
        root = Path(tmp)
        full = with_minilm_estimate(timed_build(records, "v1", root, backend, settings), rate)
        # Update: 1% of notes deleted, 1% edited, 1% added (what a day of writing might look like at scale)
        changed = max(1, n // 100)
        updated = [dict(r) for r in records[changed:]]
        for r in updated[:changed]:
            r["messages"] = [
                r["messages"][0],
                {"role": "assistant", "content": r["messages"][1]["content"] + " edited"},
            ]
        updated += make_records(changed, rng, vocab, prefix="new")
        update = with_minilm_estimate(timed_build(updated, "v2", root, backend, settings), rate)
        queries = [" ".join(rng.choices(vocab[:2000], k=8)) for _ in range(n_queries)]
        latency = {"default": query_latency(root, backend, queries)}
        recall = None
        if n >= 50_000:
            vectors = load_current(root / "embeddings").vectors
            recall, hnsw = recall_at_10(vectors, backend.encode(queries), settings)
            hnsw.hnsw.efSearch = settings.hnsw_ef_search
            latency["hnsw"] = query_latency(root, backend, queries, faiss_index=hnsw)
    return {
        "chunks": n,
        "full_build": full,
        "incremental_update": update,
        "update_share_of_full": round(update["seconds"] / full["seconds"], 3),
        "update_share_of_full_minilm_estimate": round(
            update["minilm_estimate_at_reference_rate_s"] / full["minilm_estimate_at_reference_rate_s"], 4
        ),
        "query_latency": latency,
        "recall_vs_exact": recall,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--minilm-sample", type=int, default=1000)
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--minilm-recall-sample", type=int, default=3000)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results_embedding_bench.json")
    args = parser.parse_args()
    rng = random.Random(0)
    vocab = vocabulary(rng)
    settings = EmbedSettings()
    minilm = minilm_rate(args.minilm_sample, rng, vocab)
    print("minilm", minilm, flush=True)
    minilm["recall_vs_exact"] = minilm_recall(args.minilm_recall_sample, 300, rng, vocab, settings)
    print("minilm recall", minilm["recall_vs_exact"], flush=True)
    results = {
        "machine": f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} at start",
        "embed_settings": settings.model_dump(mode="json"),
        "minilm": minilm,
        "sizes": [],
    }
    for n in args.sizes:
        result = run_size(n, minilm["chunks_per_s"], rng, vocab, settings, args.queries)
        print(json.dumps(result), flush=True)
        results["sizes"].append(result)
    results["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    results["load_average_end"] = round(os.getloadavg()[0], 1)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
