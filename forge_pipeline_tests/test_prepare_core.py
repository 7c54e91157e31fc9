"""Prepare stage core: PII scrubbing, quality filters, dedup (real presidio, spaCy, MiniLM, FAISS)."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta

import polars as pl
import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from forge_pipeline.prepare.config import DedupSettings, FilterSettings, ScrubSettings  # noqa: E402
from forge_pipeline.prepare.dedup import deduplicate  # noqa: E402
from forge_pipeline.prepare.embeddings import Embedder  # noqa: E402
from forge_pipeline.prepare.pii import (  # noqa: E402
    analyze_texts,
    build_analyzer,
    find_residual_pii,
    scrub_examples,
)
from forge_pipeline.prepare.quality import filter_examples  # noqa: E402
from forge_pipeline.records import EXAMPLE_SCHEMA, example_id_for, examples_frame  # noqa: E402

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def make_examples(chats: list[list[tuple[str, str]]], start: datetime = T0) -> pl.DataFrame:
    rows = []
    for i, chat in enumerate(chats):
        messages = [{"role": r, "content": c} for r, c in chat]
        rows.append(
            {
                "example_id": example_id_for(messages),
                "messages": messages,
                "source": "conversation",
                "source_path": f"chats.jsonl:{i + 1}",
                "conversation_id": f"c{i}",
                "created_at": start + timedelta(hours=i),
                "tags": [],
            }
        )
    return examples_frame(rows)


@pytest.fixture(scope="module")
def analyzer():
    return build_analyzer()


@pytest.fixture(scope="module")
def embedder():
    return Embedder()


def test_placeholders_consistent_across_examples(analyzer):
    frame = make_examples(
        [
            [
                ("user", "Email john.smith@example.com about the report, John Smith said."),
                ("assistant", "I will write to john.smith@example.com today."),
            ],
            [("user", "Ask Peter Jones to email john.smith@example.com and jane.doe@example.org.")],
            [("user", "What is a monad?"), ("assistant", "A monoid in the category of endofunctors.")],
        ]
    )
    out, report = scrub_examples(frame, ScrubSettings(), analyzer)
    texts = "\n".join(m["content"] for msgs in out["messages"] for m in msgs)
    assert "john.smith@example.com" not in texts and "jane.doe@example.org" not in texts
    assert "John Smith" not in texts and "Peter Jones" not in texts
    # the same address gets the same placeholder in every example; a different one a new number
    assert texts.count("<EMAIL_ADDRESS_1>") == 3 and texts.count("<EMAIL_ADDRESS_2>") == 1
    assert report.examples == 3 and report.examples_changed == 2
    assert report.entity_counts["EMAIL_ADDRESS"] == 4 and report.entity_counts["PERSON"] >= 2
    # schema kept, content-changed rows get new ids, untouched row keeps its id, replacements hold no raw PII
    assert {k: out.schema[k] for k in EXAMPLE_SCHEMA} == EXAMPLE_SCHEMA
    changed = out.filter(pl.col("example_id") != pl.col("original_example_id"))
    assert changed.height == 2
    assert all(r["example_id"] == example_id_for(r["messages"]) for r in out.to_dicts())
    assert "example.com" not in str(out["pii_replacements"].to_list())
    # deterministic: numbering does not depend on input order
    out2, _ = scrub_examples(frame.reverse(), ScrubSettings(), analyzer)
    assert out2.sort("example_id")["messages"].to_list() == out.sort("example_id")["messages"].to_list()
    assert find_residual_pii(out, ScrubSettings(), analyzer) == []


def test_detection_cache_analyzes_only_new_messages(analyzer, tmp_path):
    chats = [
        [("user", f"Ping {n} at {n.split()[0].lower()}@example.com about the launch.")]
        for n in ("John Smith", "Mary Brown", "David Miller")
    ]
    frame = make_examples(chats)
    first, r1 = scrub_examples(frame, ScrubSettings(), analyzer, cache_dir=tmp_path)
    assert r1.messages_analyzed == 3
    more = pl.concat([frame, make_examples([[("user", "Ask Sarah Wilson to mail john@example.com too.")]])])
    second, r2 = scrub_examples(more, ScrubSettings(), analyzer, cache_dir=tmp_path)
    assert r2.messages_analyzed == 1 and r2.messages == 4
    # cached detections give the same scrubbed text as a fresh analysis, placeholders consistent across runs
    fresh, _ = scrub_examples(more, ScrubSettings(), analyzer)
    assert second["messages"].to_list() == fresh["messages"].to_list()
    assert "john@example.com" not in str(second["messages"].to_list())
    # changed settings invalidate the cache instead of reusing stale detections
    _, r3 = scrub_examples(more, ScrubSettings(score_threshold=0.6), analyzer, cache_dir=tmp_path)
    assert r3.messages_analyzed == 4
    # nothing in the cache holds raw text
    blob = b"".join(p.read_bytes() for p in (tmp_path / "pii").glob("*.parquet"))
    assert b"example.com" not in blob and b"Smith" not in blob


def test_allow_and_deny_lists(analyzer):
    frame = make_examples([[("user", "Maya Lindqvist met Peter Jones to discuss Project Falcon and bluebird.")]])
    settings = ScrubSettings(allow_list=["Maya Lindqvist"], deny_list=["Project Falcon", "bluebird"])
    out, report = scrub_examples(frame, settings, analyzer)
    text = out["messages"][0][0]["content"]
    assert "Maya Lindqvist" in text and "Peter Jones" not in text
    assert "Project Falcon" not in text and "bluebird" not in text and "<DENY_LIST_2>" in text
    assert report.entity_counts["DENY_LIST"] == 2


@pytest.mark.parametrize(
    "value,entity",
    [
        ("221 Maple Street, Springfield, IL 62704", "STREET_ADDRESS"),
        ("Storgatan 12, 114 51 Stockholm", "STREET_ADDRESS"),
        ("+1 415 555 0132", "PHONE_NUMBER"),
        ("070-123 45 67", "PHONE_NUMBER"),
        ("+44 20 7946 0958", "PHONE_NUMBER"),
        ("DE89 3704 0044 0532 0130 00", "IBAN_CODE"),
    ],
)
def test_custom_recognizers(analyzer, value, entity):
    text = f"Please note it down: {value} is what she gave me."
    [found] = analyze_texts(analyzer, [text], ScrubSettings())
    assert [(d.entity_type, text[d.start : d.end]) for d in found] == [(entity, value)]


def test_custom_recognizers_leave_ordinary_text_alone(analyzer):
    texts = [
        "Version 3.11 was released with faster startup.",
        "We walked 12 blocks down the street today.",
        "The build took 415 seconds and 20 retries.",
    ]
    assert analyze_texts(analyzer, texts, ScrubSettings(entities=["STREET_ADDRESS", "PHONE_NUMBER"])) == [[], [], []]


def test_very_long_mixed_empty_messages_nothing_lost(analyzer):
    long_text = ("Filler sentence about gardening and compilers. " * 3000) + " Mail me at zed.long@example.com."
    frame = make_examples(
        [
            [("user", long_text)],
            [("user", "Привет! 你好 🎉 Call Anna Berg on +46 70 123 45 67 😀"), ("assistant", "")],
            [("user", ""), ("assistant", "   ")],
        ]
    )
    out, _ = scrub_examples(frame, ScrubSettings(), analyzer)
    assert out.height == 3
    by_orig = {r["original_example_id"]: r for r in out.to_dicts()}
    long_out = by_orig[frame["example_id"][0]]["messages"][0]["content"]
    assert "zed.long@example.com" not in long_out and long_out.endswith("<EMAIL_ADDRESS_1>.")
    assert len(long_out) > 140_000  # chunked, not truncated
    mixed = by_orig[frame["example_id"][1]]["messages"][0]["content"]
    # a small English NER model may tag a Cyrillic word as a name (over-redaction is the safe side)
    assert "你好 🎉 Call" in mixed and "😀" in mixed and "+46 70 123 45 67" not in mixed
    # empties pass the scrubber untouched; the filter then quarantines them with a reason
    kept, quarantine = filter_examples(out, FilterSettings(max_tokens=100_000))
    assert kept.height + quarantine.frame().height == 3
    assert quarantine.reason_counts() == {"empty_assistant_turn": 2}


def test_each_filter_reason():
    prose = "The quick brown fox explains why unit tests catch regressions before the release goes out."
    code = "```python\n" + "\n".join(f"x{i} = {i}" for i in range(20)) + "\n```"
    frame = make_examples(
        [
            [("user", "Explain testing."), ("assistant", prose)],  # kept
            [("user", "hi"), ("assistant", "ok")],  # too_short
            [("user", "Tell me a story."), ("assistant", "word " * 300)],  # too_long (max 200)
            [("user", "Here is my code, thoughts?"), ("assistant", code)],  # mostly_non_text
            [("user", "Links please"), ("assistant", "\n".join(f"- https://example.com/{i}" for i in range(10)))],
            [("user", "Repeat"), ("assistant", "\n".join(["same line of text here"] * 6 + ["other text line"]))],
            [
                ("user", "Erzähl mir etwas über das Wetter in Berlin heute."),
                ("assistant", "Heute ist das Wetter in Berlin sonnig und warm, am Abend kommt vielleicht Regen."),
            ],
            [("user", "Say something"), ("assistant", " ")],
        ]
    )
    kept, quarantine = filter_examples(frame, FilterSettings(min_tokens=8, max_tokens=200))
    reasons = dict(zip(quarantine.frame()["record_id"], quarantine.frame()["reason"]))
    ids = frame["example_id"].to_list()
    assert kept["example_id"].to_list() == [ids[0]]
    assert [reasons[i] for i in ids[1:]] == [
        "too_short",
        "too_long",
        "mostly_non_text",
        "mostly_non_text",
        "repeated_lines",
        "language",
        "empty_assistant_turn",
    ]
    assert quarantine.frame()["file"].to_list()[0] == "chats.jsonl:2"


def test_filter_verdict_cache(tmp_path):
    prose = "The quick brown fox explains why unit tests catch regressions before the release goes out."
    frame = make_examples([[("user", "Explain testing."), ("assistant", prose)], [("user", "hi"), ("assistant", "ok")]])
    settings = FilterSettings()
    kept1, q1 = filter_examples(frame, settings, cache_dir=tmp_path)
    [cache_file] = (tmp_path / "filter").glob("*.parquet")
    assert pl.read_parquet(cache_file).height == 2
    kept2, q2 = filter_examples(frame, settings, cache_dir=tmp_path)
    assert kept2.equals(kept1) and q2.frame().equals(q1.frame())
    # other thresholds mean another cache file: a stricter min_tokens drops the first example too
    kept3, q3 = filter_examples(frame, FilterSettings(min_tokens=50), cache_dir=tmp_path)
    assert kept3.height == 0 and q3.reason_counts() == {"too_short": 2}


def test_exact_and_near_duplicates_keep_newest(tmp_path, embedder):
    base = "How do I configure the FAISS index for cosine similarity search over sentence embeddings?"
    frame = make_examples(
        [
            [("user", base), ("assistant", "Normalize vectors and use an inner-product index.")],  # oldest
            [("user", base.upper() + "  "), ("assistant", "normalize vectors and use an INNER-product index.")],
            [
                ("user", "How do I set up a FAISS index for cosine similarity search over sentence embeddings?"),
                ("assistant", "Normalize vectors and use an inner-product index."),
            ],  # near dup, newest
            [("user", "What is a good recipe for sourdough bread?"), ("assistant", "Flour, water, salt, starter.")],
        ]
    )
    kept, quarantine, report = deduplicate(frame, DedupSettings(cosine_threshold=0.9), embedder, tmp_path)
    ids = frame["example_id"].to_list()
    assert sorted(kept["example_id"].to_list()) == sorted([ids[2], ids[3]])
    q = {r["record_id"]: r for r in quarantine.frame().to_dicts()}
    assert q[ids[0]]["reason"] == "exact_duplicate" and ids[1] in q[ids[0]]["detail"]  # newer exact copy kept
    assert q[ids[1]]["reason"] == "near_duplicate" and ids[2] in q[ids[1]]["detail"]
    assert report.pairs[0]["similarity"] >= 0.9 and report.clusters == 1
    assert report.exact_dropped == 1 and report.near_dropped == 1


def test_a_persons_correction_or_choice_is_kept_over_a_newer_automatic_near_duplicate(tmp_path, embedder):
    """The playground bug: a wrong automatic example (newer) pushed the person's correction out as a near-duplicate."""
    question = "How often should I feed my sourdough starter when it lives on the kitchen counter?"
    frame = make_examples(
        [
            [("user", question), ("assistant", "Twice a day, at about the same times, with equal flour and water.")],
            [("user", question), ("assistant", "Twice a day, at roughly the same times, with equal flour and water.")],
            [
                ("user", question + " Honestly."),
                ("assistant", "Twice a day, at the same times, equal flour and water."),
            ],
        ]
    )
    frame = frame.with_columns(
        source=pl.Series(["interaction", "interaction", "vault"]),
        tags=pl.Series([["correction"], ["choice"], []], dtype=pl.List(pl.String)),
    )
    ids = frame["example_id"].to_list()
    kept, quarantine, report = deduplicate(frame, DedupSettings(cosine_threshold=0.9), embedder, tmp_path)
    assert report.near_dropped == 2  # the three are one cluster
    # The newest human judgement (the choice) is kept; the automatic example is dropped though it is newest.
    assert kept["example_id"].to_list() == [ids[1]]
    dropped = {r["record_id"]: r["reason"] for r in quarantine.rows}
    assert dropped == {ids[0]: "near_duplicate", ids[2]: "near_duplicate"}
    # An incremental run that adds a newer automatic near-copy does not displace it either.
    newer = make_examples(
        [[("user", question + " Please."), ("assistant", "Twice a day, the same times, equal flour and water.")]],
        start=T0 + timedelta(days=3),
    )
    kept2, _, _ = deduplicate(pl.concat([frame, newer]), DedupSettings(cosine_threshold=0.9), embedder, tmp_path)
    assert kept2["example_id"].to_list() == [ids[1]]


def test_judgements_of_different_turns_of_one_chat_are_all_kept_however_alike(tmp_path, embedder):
    """The playground's multi-turn chat: a correction at turn 1 and another at turn 2 of the same chat are two
    things taught (the second carries the first as history, so they look alike); neither is dropped. An automatic
    copy of the first is."""
    u1 = ("user", "How often should I feed my sourdough starter when it lives on the kitchen counter?")
    fix1 = ("assistant", "Twice a day, at about the same times, with equal flour and water.")
    frame = make_examples(
        [
            [u1, fix1],
            [u1, fix1, ("user", "And in the fridge?"), ("assistant", "Once a week, with equal flour and water.")],
            [u1, ("assistant", "Twice a day, at roughly the same times, with equal flour and water.")],
        ]
    )
    frame = frame.with_columns(tags=pl.Series([["correction"], ["correction"], []], dtype=pl.List(pl.String)))
    ids = frame["example_id"].to_list()
    kept, quarantine, report = deduplicate(frame, DedupSettings(cosine_threshold=0.8), embedder, tmp_path)
    assert report.pairs and max(p["similarity"] for p in report.pairs) >= 0.8  # alike enough to be one group
    assert sorted(kept["example_id"].to_list()) == sorted(ids[:2])
    assert {r["record_id"]: r["reason"] for r in quarantine.rows} == {ids[2]: "near_duplicate"}


def test_embedding_cache_and_incremental_run(tmp_path):
    embedder = Embedder()
    topics = [
        "sourdough bread",
        "rust lifetimes",
        "tax deadlines",
        "marathon training",
        "git rebase",
        "orchid care",
        "sql indexes",
        "jazz chords",
    ]
    chats = [
        [("user", f"Tell me something useful about {t}."), ("assistant", f"Here is a tip about {t}.")] for t in topics
    ]
    frame = make_examples(chats)
    kept1, _, r1 = deduplicate(frame, DedupSettings(), embedder, tmp_path)
    assert embedder.texts_encoded == 8 and r1.texts_embedded == 8 and kept1.height == 8
    # unchanged re-run: nothing embedded, nothing searched
    _, _, r2 = deduplicate(frame, DedupSettings(), embedder, tmp_path)
    assert embedder.texts_encoded == 8 and r2.new_examples == 0
    # one new example that near-duplicates an old one and is newer: only it is embedded; it replaces the old
    extra = make_examples(
        [
            [
                ("user", "Tell me something useful about sourdough bread!"),
                ("assistant", "Here is a tip about sourdough bread."),
            ]
        ],
        start=T0 + timedelta(days=1),
    )
    kept3, q3, r3 = deduplicate(pl.concat([frame, extra]), DedupSettings(), Embedder(), tmp_path)
    assert r3.texts_embedded == 1 and r3.new_examples == 1
    assert extra["example_id"][0] in kept3["example_id"].to_list()
    assert q3.frame()["record_id"].to_list() == [frame["example_id"][0]]
    # a fresh embedder on a fresh process-level object still reads the persisted cache
    fresh = Embedder()
    deduplicate(pl.concat([frame, extra]), DedupSettings(cosine_threshold=0.95), fresh, tmp_path)
    assert fresh.texts_encoded == 0
