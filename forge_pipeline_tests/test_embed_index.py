"""The embedding index core with the real packaged MiniLM and real FAISS: chunking, incremental updates,
deletion, search, cache shared with dedup, files on disk."""

from __future__ import annotations

import copy
import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import faiss  # noqa: E402
import numpy as np  # noqa: E402
import polars as pl  # noqa: E402
import pytest  # noqa: E402

from forge_pipeline.embed.backends import shared_backend  # noqa: E402
from forge_pipeline.embed.chunking import chunk_messages  # noqa: E402
from forge_pipeline.embed.config import EmbedSettings  # noqa: E402
from forge_pipeline.embed.index import build_embedding_index  # noqa: E402
from forge_pipeline.embed.search import ModelMismatchError, search  # noqa: E402
from forge_pipeline.embed.store import load_current, read_versions  # noqa: E402
from forge_pipeline.prepare.config import DedupSettings  # noqa: E402
from forge_pipeline.prepare.dedup import deduplicate, embedding_text  # noqa: E402
from forge_pipeline.records import examples_frame  # noqa: E402
from forge_pipeline_tests.embed_fixtures import LONG_NOTE, records  # noqa: E402

SETTINGS = EmbedSettings()


@pytest.fixture(scope="module")
def backend():
    return shared_backend(SETTINGS)  # the packaged all-MiniLM-L6-v2, loaded once for the module


def _build(tmp_path, backend, recs, version="v1", settings=SETTINGS):
    return build_embedding_index(recs, version, tmp_path / "embeddings", backend, tmp_path / "cache", settings)


def test_short_example_is_one_chunk_with_the_dedup_text_and_long_note_splits_by_heading():
    short = records()[0]["messages"]
    assert [c.text for c in chunk_messages(short, 1000)] == [embedding_text(short)]
    long_messages = records()[3]["messages"]
    chunks = chunk_messages(long_messages, 400)
    assert len(chunks) >= 6 and all(len(c.text) <= 400 for c in chunks)
    assert {"Watering", "Pests"} <= {c.heading for c in chunks}
    assert all("You are my writing assistant" not in c.text for c in chunks)  # system prompt left out
    assert "".join(c.text for c in chunks).count("copper tape") == LONG_NOTE.count("copper tape")  # nothing lost


def test_search_returns_the_planted_note_first_with_provenance(tmp_path, backend):
    folder, meta, report = _build(tmp_path, backend, records())
    assert (meta["dimension"], meta["index_type"], meta["backend"]) == (384, "flat", "sentence-transformers")
    assert report.chunks > len(records()) and report.texts_embedded == report.chunks
    version = load_current(tmp_path / "embeddings")
    hits = search(version, backend, "how often should I feed the sourdough starter?", k=3)
    assert hits[0]["example_id"] == "sourdough" and hits[0]["source_path"] == "Kitchen/Sourdough.md"
    assert hits[0]["score"] > hits[1]["score"] and len({h["example_id"] for h in hits}) == 3
    train = search(version, backend, "train to Lyon in the morning", k=1)
    assert train[0]["example_id"] == "interaction-1" and train[0]["conversation_id"] == "conv-9"
    only_vault = search(version, backend, "train to Lyon in the morning", k=5, source="vault")
    assert only_vault and all(h["source"] == "vault" for h in only_vault)
    slugs = search(version, backend, "slugs eating lettuce", k=1)[0]
    assert slugs["example_id"] == "garden" and slugs["heading"] == "Pests"


def test_incremental_update_embeds_only_changed_chunks_and_deleted_notes_leave(tmp_path, backend):
    first = records()
    _, _, r1 = _build(tmp_path, backend, first, "v1")
    second = copy.deepcopy([r for r in first if r["example_id"] != "postgres"])  # postgres note deleted
    second[0]["messages"][2]["content"] += " Discard half before feeding."  # sourdough changed
    second.append(
        {
            **copy.deepcopy(first[2]),
            "example_id": "chess",
            "source_path": "Hobbies/Chess.md",
            "messages": [
                {"role": "user", "content": "Chess openings?"},
                {"role": "assistant", "content": "I play the Caro-Kann against e4."},
            ],
        }
    )
    _, meta, r2 = _build(tmp_path, backend, second, "v2")
    assert r2.texts_embedded == 2  # the changed sourdough chunk and the new chess note, nothing else
    assert r2.reused_from_previous == r1.chunks - 2  # everything but the old sourdough and postgres chunks
    assert (r2.added_chunks, r2.removed_chunks) == (2, 2)
    version = load_current(tmp_path / "embeddings")
    assert version.meta["version_id"] == "v2" and read_versions(tmp_path / "embeddings")["current"] == "v2"
    assert "postgres" not in set(version.chunks["example_id"])
    hits = search(version, backend, "Postgres read replicas and failover", k=5)
    assert all(h["example_id"] != "postgres" for h in hits)
    # a rebuild of the same content embeds nothing at all
    _, _, r3 = _build(tmp_path, backend, second, "v3")
    assert r3.texts_embedded == 0 and r3.reused_from_previous == r3.chunks


def test_dedup_and_index_share_cached_vectors(tmp_path, backend):
    recs = records()
    frame = examples_frame([{**r, "created_at": None} for r in recs])
    deduplicate(frame, DedupSettings(), backend, tmp_path / "cache")
    long_chunks = len(chunk_messages(recs[3]["messages"], SETTINGS.chunk_max_chars))
    _, _, report = _build(tmp_path, backend, recs)
    # the four short examples were embedded by dedup; only the long note's chunks are new to the model
    assert report.reused_from_cache == 4 and report.texts_embedded == long_chunks


def test_files_on_disk_hold_ids_provenance_vectors_and_a_matching_faiss_index(tmp_path, backend):
    folder, meta, _ = _build(tmp_path, backend, records())
    table = pl.read_parquet(folder / "chunks.parquet")
    assert {"chunk_id", "example_id", "source", "source_path", "text", "vector"} <= set(table.columns)
    assert table.schema["vector"] == pl.Array(pl.Float32, 384)
    index = faiss.read_index(str(folder / "index.faiss"))
    assert index.ntotal == table.height == meta["chunks"]
    vectors = table["vector"].to_numpy()
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-4)
    scores, rows = index.search(vectors[:3], 1)
    assert rows[:, 0].tolist() == [0, 1, 2]  # row i of the Parquet is vector i of the FAISS index
    assert meta["model"] and meta["model_path"] == backend.model_path


def test_hnsw_index_finds_the_same_planted_note(tmp_path, backend):
    settings = EmbedSettings(index_type="hnsw")
    _, meta, _ = _build(tmp_path, backend, records(), settings=settings)
    version = load_current(tmp_path / "embeddings")
    assert meta["index_type"] == "hnsw" and isinstance(version.faiss_index, faiss.IndexHNSWFlat)
    assert search(version, backend, "sourdough starter feeding", k=1)[0]["example_id"] == "sourdough"


def test_search_with_another_model_names_the_index_and_both_models(tmp_path, backend):
    _build(tmp_path, backend, records())
    version = load_current(tmp_path / "embeddings")
    version.meta["model_path"] = "/elsewhere/other-model"
    with pytest.raises(ModelMismatchError, match="meta.json.*other-model"):
        search(version, backend, "anything")
