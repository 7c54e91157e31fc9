"""Recall/precision of the scrubber's analyzer on the labelled synthetic set data/pii_eval/messages.jsonl."""

from __future__ import annotations

from forge_pipeline.prepare.config import ScrubSettings
from forge_pipeline.prepare.pii import build_analyzer
from forge_pipeline.prepare.pii_eval import evaluate, load_eval_set, markdown_table


def test_pii_recall_and_precision_per_entity():
    rows = load_eval_set()
    assert len(rows) >= 200 and sum(1 for r in rows if not r["spans"]) >= 40  # negatives included
    table = evaluate(build_analyzer(), rows, ScrubSettings())
    print("\n" + markdown_table(table))
    for entity in ("PERSON", "EMAIL_ADDRESS", "PHONE_NUMBER", "CREDIT_CARD"):
        assert table[entity]["recall"] >= 0.9, (entity, table[entity])
    for entity in ("IBAN_CODE", "STREET_ADDRESS", "IP_ADDRESS"):
        assert table[entity]["labelled"] > 0 and table[entity]["recall"] >= 0.8, (entity, table[entity])
    # precision guards against "redact everything": the negatives must stay mostly clean
    assert all(r["precision"] >= 0.8 for r in table.values() if r["precision"] is not None), table


def test_batched_paths_match_plain_analyze_loop():
    """The fast paths (nlp.pipe with parser off, one or two spaCy processes) detect exactly what presidio's
    plain one-document-at-a-time analyze() loop detects."""
    from forge_pipeline.prepare.pii import analyze_texts

    analyzer = build_analyzer()
    texts = [r["text"] for r in load_eval_set()] * 3  # 744 texts: enough for two worker processes
    one = analyze_texts(analyzer, texts, ScrubSettings(n_process=1))
    two = analyze_texts(analyzer, texts, ScrubSettings(n_process=2))
    plain = analyze_texts(analyzer, texts[:120], ScrubSettings(), fast=False)
    assert one == two
    assert one[:120] == plain
    assert sum(len(d) for d in one) > 400
