"""Embedding index of kept notes and interactions: chunking, embedding backends, FAISS index, search.

Dagster-free core; the asset lives in forge_pipeline/defs/catalog/embedding_index.py and the HTTP routes in
forge_pipeline/serve/embedding_routes.py.
"""
