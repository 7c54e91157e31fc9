"""Loading the embedding model prints nothing: a new user's first screen (and Dagster's logs) stay clean."""

from transformers.utils import logging as transformers_logging

from forge_pipeline.prepare.embeddings import Embedder


def test_loading_minilm_prints_nothing_and_leaves_progress_bars_as_they_were(capfd):
    transformers_logging.enable_progress_bar()  # transformers' default; an earlier CLI test may have turned it off
    embedder = Embedder()
    assert embedder.model.get_embedding_dimension() == 384
    out, err = capfd.readouterr()
    assert (out, err) == ("", "")
    assert transformers_logging.is_progress_bar_enabled()  # other loads (training, evaluation) keep theirs
