"""Exact and near-duplicate removal.

1. Exact: examples whose normalised text (roles + contents, lower-cased, whitespace collapsed, placeholder
   numbers dropped so `<PERSON_1>` == `<PERSON_7>`) hashes the same.
2. Near: sentence embeddings (cosine = inner product of normalised vectors) in a FAISS `IndexFlatIP`;
   any pair with cosine >= `cosine_threshold` is a duplicate.

Keep rule (both steps): a person's own judgement first: an example tagged `correction` or `choice` (a reply
the person wrote or picked in the playground) is kept over any automatic example of its group, so a wrong
automatic near-copy can never push it out. A judgement gives way only to a newer judgement of the same prompt
(the same messages before the judged reply: the person changed their mind); judgements of other turns are
each kept, however alike (a chat judged at turn 1 and at turn 3 taught two things). Within the same kind, the
NEWEST member (`created_at`) of a group is kept, ties broken by the smallest `example_id`. Near-duplicates are resolved greedily newest-first: an example is kept unless a
kept example is within the threshold; a dropped one records the kept example it is closest to.

Incremental: `<cache>/dedup/state.parquet` remembers the previous run's decisions (with the model and
threshold they were made with). Examples seen before keep their decision as long as the example they
were compared with is still there; only new examples are embedded (embedding cache) and searched,
against the already-kept ones and each other, so the cost follows the number of new examples. When a new
example displaces a kept one, examples dropped earlier in favour of the displaced one point to the new one
(with their earlier similarity, as they were not compared again).
Exact matching is a hash over everything and costs little, so it always runs in full.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl

from forge_pipeline.atomic import atomic_path
from forge_pipeline.prepare.config import DedupSettings
from forge_pipeline.prepare.embeddings import Embedder, EmbeddingCache
from forge_pipeline.records import PERSON_TAUGHT_TAGS, Quarantine

PLACEHOLDER_NUM_RE = re.compile(r"<([A-Z_]+?)_\d+>")
SEARCH_BATCH = 4096  # faiss range_search allocates per query batch; it aborted above ~5,000 (benchmarks/README.md)
STATE_SCHEMA = {"example_id": pl.String, "kept_id": pl.String, "similarity": pl.Float64, "signature": pl.String}


def embedding_text(messages: list[dict]) -> str:
    return "\n".join(m["role"] + ": " + PLACEHOLDER_NUM_RE.sub(r"<\1>", m.get("content") or "") for m in messages)


def normalized_hash(messages: list[dict]) -> str:
    text = " ".join(embedding_text(messages).lower().split())
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


@dataclass
class DedupReport:
    input: int = 0
    exact_dropped: int = 0
    near_dropped: int = 0
    kept: int = 0
    new_examples: int = 0  # examples not decided by the previous run (what this run searched)
    texts_embedded: int = 0
    clusters: int = 0
    pairs: list[dict] = field(default_factory=list)  # near-duplicate pairs: kept_id, dropped_id, similarity

    def as_dict(self) -> dict:
        return {k: v for k, v in self.__dict__.items() if k != "pairs"}


KEEP_RULE = "human-first-per-prompt"  # part of the state signature: decisions under another rule are redone


def _is_human() -> pl.Expr:
    return pl.col("tags").list.eval(pl.element().is_in(PERSON_TAUGHT_TAGS)).list.any().fill_null(False)


def _order(frame: pl.DataFrame) -> pl.DataFrame:
    """Human-judged first, then newest first, ties by smallest example_id: the first of a group is the one kept."""
    return (
        frame.with_columns(_human=_is_human())
        .sort(["_human", "created_at", "example_id"], descending=[True, True, False], nulls_last=True)
        .drop("_human")
    )


def deduplicate(
    examples: pl.DataFrame,
    settings: DedupSettings,
    embedder: Embedder,
    cache_dir: Path,
    stage: str = "deduplicated_examples",
) -> tuple[pl.DataFrame, Quarantine, DedupReport]:
    quarantine, report = Quarantine(stage), DedupReport(input=examples.height)
    ordered = _order(examples.unique("example_id", keep="first", maintain_order=True))
    if ordered.height < examples.height:
        # identical example_id means identical content: an exact duplicate by construction
        dup_ids = examples.filter(pl.col("example_id").is_duplicated())["example_id"].unique().to_list()
        for eid in dup_ids:
            extra = examples.filter(pl.col("example_id") == eid).height - 1
            for _ in range(extra):
                quarantine.add(reason="exact_duplicate", detail=f"same example_id as kept {eid}", record_id=eid)
        report.exact_dropped += examples.height - ordered.height

    rows = ordered.select("example_id", "messages", "source_path").to_dicts()
    human = set(ordered.filter(_is_human())["example_id"].to_list())
    # What a judgement answers: every message before the judged reply.
    prompt_of = {row["example_id"]: normalized_hash((row["messages"] or [])[:-1]) for row in rows}
    first_by_hash: dict[str, str] = {}
    survivors: list[int] = []
    for i, row in enumerate(rows):
        h = normalized_hash(row["messages"] or [])
        if h in first_by_hash:
            quarantine.add(
                reason="exact_duplicate",
                detail=f"kept {first_by_hash[h]} (similarity 1.0)",
                file=row["source_path"],
                record_id=row["example_id"],
                payload={"kept_id": first_by_hash[h], "similarity": 1.0},
            )
            report.exact_dropped += 1
        else:
            first_by_hash[h] = row["example_id"]
            survivors.append(i)

    ids = [rows[i]["example_id"] for i in survivors]
    signature = f"{embedder.model_path}|{settings.cosine_threshold}|{KEEP_RULE}"
    state_path = Path(cache_dir) / "dedup" / "state.parquet"
    previous: dict[str, tuple[str | None, float | None]] = {}
    if state_path.exists():
        state = pl.read_parquet(state_path)
        if state.height and state["signature"][0] == signature:
            previous = {r[0]: (r[1], r[2]) for r in state.select("example_id", "kept_id", "similarity").iter_rows()}

    present = set(ids)
    decided: dict[str, tuple[str | None, float | None]] = {}
    for eid in ids:  # a previous decision stands while the example it was compared with is still present
        if eid in previous:
            kept_id, sim = previous[eid]
            if kept_id is None or (kept_id in present and previous.get(kept_id, ("x",))[0] is None):
                decided[eid] = (kept_id, sim)
    new_pos = [p for p, eid in enumerate(ids) if eid not in decided]
    old_kept_pos = [p for p, eid in enumerate(ids) if eid in decided and decided[eid][0] is None]
    report.new_examples = len(new_pos)

    decisions: dict[str, tuple[str | None, float | None]] = {eid: v for eid, v in decided.items()}
    if new_pos:
        cache = EmbeddingCache(cache_dir, embedder.model_path)
        before = embedder.texts_encoded
        cand_pos = old_kept_pos + new_pos
        vectors = cache.embed([embedding_text(rows[survivors[p]]["messages"] or []) for p in cand_pos], embedder)
        report.texts_embedded = embedder.texts_encoded - before
        import faiss

        index = faiss.IndexFlatIP(vectors.shape[1])
        index.add(vectors)
        n_old = len(old_kept_pos)
        neighbours: dict[int, list[tuple[int, float]]] = {}  # candidate index -> [(candidate index, cosine)]
        for start in range(n_old, len(cand_pos), SEARCH_BATCH):
            q = vectors[start : start + SEARCH_BATCH]
            lims, dist, labels = index.range_search(q, float(settings.cosine_threshold))
            for qi in range(q.shape[0]):
                a = start + qi
                for j in range(lims[qi], lims[qi + 1]):
                    b = int(labels[j])
                    if b != a:
                        neighbours.setdefault(a, []).append((b, float(dist[j])))
                        neighbours.setdefault(b, []).append((a, float(dist[j])))
        # greedy in keep order (positions in `ids` are already newest-first)
        order = sorted(range(len(cand_pos)), key=lambda c: cand_pos[c])
        kept_c: set[int] = set()
        for c in order:
            eid = ids[cand_pos[c]]
            near = [(s, b) for b, s in neighbours.get(c, []) if b in kept_c]
            if eid in human:  # only a newer judgement of the same prompt replaces a person's judgement
                near = [
                    (sim, b)
                    for sim, b in near
                    if ids[cand_pos[b]] in human and prompt_of[ids[cand_pos[b]]] == prompt_of[eid]
                ]
            best = max(near, default=None)
            if best is None:
                kept_c.add(c)
                decisions[eid] = (None, None)
            else:
                decisions[eid] = (ids[cand_pos[best[1]]], round(best[0], 4))

    # an earlier decision may point at an example this run displaced (a newer near-duplicate arrived):
    # re-point it to the example that displaced it so every dropped one names a kept example
    for eid, (kept_id, sim) in list(decisions.items()):
        if kept_id is not None and decisions.get(kept_id, (None,))[0] is not None:
            decisions[eid] = (decisions[kept_id][0], sim)

    kept_ids = []
    by_id = {rows[i]["example_id"]: rows[i] for i in survivors}
    for eid in ids:
        kept_id, sim = decisions[eid]
        if kept_id is None:
            kept_ids.append(eid)
        else:
            report.near_dropped += 1
            report.pairs.append({"kept_id": kept_id, "dropped_id": eid, "similarity": sim})
            quarantine.add(
                reason="near_duplicate",
                detail=f"kept {kept_id} (cosine {sim:.3f})",
                file=by_id[eid]["source_path"],
                record_id=eid,
                payload={"kept_id": kept_id, "similarity": sim},
            )
    report.clusters = len({p["kept_id"] for p in report.pairs})
    report.kept = len(kept_ids)

    state = pl.DataFrame(
        [
            {"example_id": e, "kept_id": decisions[e][0], "similarity": decisions[e][1], "signature": signature}
            for e in ids
        ],
        schema=STATE_SCHEMA,
    )
    state_path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(state_path) as tmp:
        state.write_parquet(tmp)
    keep_set = set(kept_ids)
    kept_frame = examples.unique("example_id", keep="first", maintain_order=True).filter(
        pl.col("example_id").is_in(keep_set)
    )
    return kept_frame, quarantine, report
