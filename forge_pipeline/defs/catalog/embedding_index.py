"""The embedding index of a dataset version: every kept note chunk and interaction, searchable."""

from __future__ import annotations

import dagster as dg
import polars as pl

from forge_pipeline.catalog.handoff import DatasetVersion
from forge_pipeline.defs.common import markdown_preview
from forge_pipeline.defs.resources import ForgeSettingsResource
from forge_pipeline.embed.handoff import EmbeddingIndexVersion


@dg.asset(kinds={"faiss", "parquet"}, code_version="1")
def embedding_index(forge: ForgeSettingsResource, dataset_version: DatasetVersion) -> dg.MaterializeResult:
    """Embeddings of every chunk of the dataset version's notes and interactions (ids, provenance, model
    name and dimension) with a FAISS index beside them, one index version per dataset version. Only new or
    changed chunks are embedded; notes gone from the dataset leave the index."""
    from forge_pipeline.embed.backends import shared_backend
    from forge_pipeline.embed.index import build_embedding_index, read_version_records
    from forge_pipeline.embed.store import index_root

    settings = forge.get()
    backend = shared_backend(settings.embed, settings.prepare.dedup.embedding_model)
    records = read_version_records(dataset_version.path)
    folder, meta, report = build_embedding_index(
        records,
        dataset_version.version_id,
        index_root(settings.data_root),
        backend,
        settings.paths.cache,
        settings.embed,
    )
    index = EmbeddingIndexVersion.model_validate({**meta, "path": str(folder)})
    chunks = pl.read_parquet(folder / "chunks.parquet", columns=["chunk_id", "source", "heading", "text"])
    return dg.MaterializeResult(
        value=index,
        metadata={
            "dagster/row_count": report.chunks,
            "examples": report.examples,
            "texts_embedded": report.texts_embedded,
            "reused_from_previous": report.reused_from_previous,
            "reused_from_cache": report.reused_from_cache,
            "added_chunks": report.added_chunks,
            "removed_chunks": report.removed_chunks,
            "model": index.model,
            "dimension": index.dimension,
            "backend": index.backend,
            "index_type": index.index_type,
            "dataset_version": index.dataset_version,
            "by_source": dg.MetadataValue.json(index.by_source),
            "path": dg.MetadataValue.path(str(folder)),
            "preview": dg.MetadataValue.md(markdown_preview(chunks, width=60)),
        },
    )


@dg.asset_check(asset=embedding_index, blocking=True)
def embedding_index_covers_the_dataset_version(
    forge: ForgeSettingsResource, embedding_index: EmbeddingIndexVersion
) -> dg.AssetCheckResult:
    """The files on disk agree (FAISS rows = Parquet rows, FAISS width = the model's dimension) and every
    example of the dataset version has at least one chunk in the index, and nothing else does."""
    from forge_pipeline.embed.index import read_version_records
    from forge_pipeline.embed.store import load_version

    settings = forge.get()
    version = load_version(embedding_index.path)  # raises, naming the file, when the row counts differ
    catalog_path = settings.paths.catalog / version.meta["dataset_version"]
    expected = {r["example_id"] for r in read_version_records(catalog_path)}
    indexed = set(version.chunks["example_id"].to_list())
    missing, extra = sorted(expected - indexed), sorted(indexed - expected)
    width_ok = version.faiss_index.d == version.meta["dimension"]
    return dg.AssetCheckResult(
        passed=not missing and not extra and width_ok,
        metadata={
            "faiss_dimension": version.faiss_index.d,
            "meta_dimension": version.meta["dimension"],
            "missing_examples": dg.MetadataValue.json(missing[:20]),
            "unexpected_examples": dg.MetadataValue.json(extra[:20]),
        },
    )
