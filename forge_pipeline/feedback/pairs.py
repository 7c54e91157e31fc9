"""Preference pairs (prompt, chosen reply, rejected reply) from the feedback people gave the server.

Where pairs come from, per interaction record:
* a corrected reply: the correction is chosen over the assistant reply it replaces (rated down or not);
* a choice between two replies: the chosen one over the other;
* ratings: for the same prompt, a reply rated up is chosen over each reply rated down (A/B traffic makes
  these: the same question answered by two versions). A reply rated down with no correction and no
  up-rated sibling has nothing to be preferred to: it is counted, not paired.

Pairs then go through the same scrub and deduplication code as training examples: each pair is laid out
as one example (prompt turns + chosen + rejected as the last two assistant turns), so presidio gives a
value the same placeholder in the prompt and in both replies, and dedup's exact and near-duplicate rules
(newest kept) apply unchanged. Records that cannot be read go to the quarantine with file, line and reason.
"""

from __future__ import annotations

import json
from collections import defaultdict
from datetime import UTC, datetime
from pathlib import Path

import polars as pl
from pydantic import ValidationError

from forge_pipeline.records import EXAMPLE_SCHEMA, MESSAGE_DTYPE, ColumnType, Quarantine, example_id_for

STAGE = "preference_pairs"
PAIR_SCHEMA: dict[str, ColumnType] = {
    "pair_id": pl.String,  # stable content hash of prompt + chosen + rejected (after scrubbing)
    "prompt": MESSAGE_DTYPE,  # the conversation up to the reply being judged, system prompt first
    "chosen": pl.String,
    "rejected": pl.String,
    "kind": pl.String,  # "correction" | "choice" | "ratings"
    "interaction_id": pl.String,
    "chosen_version": pl.String,  # model version that wrote the chosen reply (null for a person's correction)
    "rejected_version": pl.String,
    "source_path": pl.String,
    "created_at": pl.Datetime("us", "UTC"),
}


def empty_pairs() -> pl.DataFrame:
    return pl.DataFrame(schema=PAIR_SCHEMA)


def read_interaction_records(dirs: list[Path], quarantine: Quarantine) -> list[dict]:
    """Every valid interaction under `dirs` as {record (InteractionIn), interaction_id, created_at, file, line}."""
    from forge_pipeline.records import InteractionIn

    rows = []
    for directory in dirs:
        for path in sorted(Path(directory).glob("*.jsonl")) if Path(directory).is_dir() else []:
            for number, line in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines(), start=1):
                if not line.strip():
                    continue
                where = {"file": str(path), "line": number}
                try:
                    raw = json.loads(line)
                except json.JSONDecodeError as err:
                    quarantine.add(
                        reason="invalid_json",
                        detail=f"not valid JSON ({err.msg})",
                        payload=line,
                        file=str(path),
                        line=number,
                    )
                    continue
                if not isinstance(raw, dict):
                    quarantine.add(
                        reason="wrong_shape",
                        detail="a line must be a JSON object",
                        payload=line,
                        file=str(path),
                        line=number,
                    )
                    continue
                interaction_id = str(raw.pop("interaction_id", None) or f"{path.name}:{number}")
                received_at = raw.pop("received_at", None)
                try:
                    record = InteractionIn.model_validate(raw)
                    created = datetime.fromisoformat(received_at).astimezone(UTC) if received_at else None
                except (ValidationError, ValueError, AttributeError) as err:
                    detail = (
                        "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in err.errors())
                        if isinstance(err, ValidationError)
                        else f"received_at {received_at!r}: {err}"
                    )
                    quarantine.add(
                        reason="invalid_interaction",
                        detail=detail,
                        record_id=interaction_id,
                        payload=raw,
                        file=str(path),
                        line=number,
                    )
                    continue
                rows.append({"record": record, "interaction_id": interaction_id, "created_at": created, **where})
    return rows


def _with_system(messages: list[dict], system_prompt: str | None) -> list[dict]:
    # Same rule as the SFT examples (ingest.examples): DPO must see prompts laid out like SFT saw them.
    if not system_prompt or (messages and messages[0]["role"] == "system"):
        return messages
    return [{"role": "system", "content": system_prompt}, *messages]


def _prompt_key(prompt: list[dict]) -> str:
    return example_id_for(prompt)


def raw_pairs(rows: list[dict], system_prompt: str | None = None) -> tuple[list[dict], dict]:
    """Pairs before scrubbing, plus counts of feedback that gave no pair (by reason)."""
    pairs: list[dict] = []
    unpaired: defaultdict[str, int] = defaultdict(int)
    rated: dict[str, dict[str, list[dict]]] = defaultdict(lambda: {"up": [], "down": []})

    def add(row, kind, prompt, chosen, rejected, chosen_version, rejected_version):
        pairs.append(
            {
                "kind": kind,
                "prompt": _with_system(prompt, system_prompt),
                "chosen": chosen,
                "rejected": rejected,
                "interaction_id": row["interaction_id"],
                "source_path": row["file"],
                "created_at": row["created_at"],
                "chosen_version": chosen_version,
                "rejected_version": rejected_version,
            }
        )

    for row in rows:
        record = row["record"]
        messages = [m.model_dump() for m in record.messages]
        last = max((i for i, m in enumerate(messages) if m["role"] == "assistant"), default=None)
        if record.choice is not None:
            choice = record.choice
            versions = choice.model_versions or [None, None]
            add(
                row,
                "choice",
                messages,
                choice.replies[choice.chosen],
                choice.replies[1 - choice.chosen],
                versions[choice.chosen],
                versions[1 - choice.chosen],
            )
        elif record.corrected_reply is not None:
            prompt = messages[:last] if last is not None else []
            if last is None or not any(m["role"] == "user" for m in prompt):
                unpaired["correction_without_reply"] += 1
                continue
            if messages[last]["content"].strip() == record.corrected_reply.strip():
                unpaired["correction_equals_reply"] += 1
                continue
            add(
                row, "correction", prompt, record.corrected_reply, messages[last]["content"], None, record.model_version
            )
        elif record.rating is not None:
            prompt = messages[:last] if last is not None else []
            if last is None or not any(m["role"] == "user" for m in prompt):
                unpaired["rating_without_reply"] += 1
                continue
            rated[_prompt_key(prompt)][record.rating].append(
                {"row": row, "prompt": prompt, "reply": messages[last]["content"], "version": record.model_version}
            )

    for group in rated.values():
        ups = sorted(group["up"], key=lambda r: (r["row"]["created_at"] is not None, r["row"]["created_at"]))
        for down in group["down"]:
            better = [u for u in ups if u["reply"].strip() != down["reply"].strip()]
            if not better:
                unpaired["rated_down_without_alternative"] += 1
                continue
            up = better[-1]  # the newest up-rated reply: the person's latest judgement of a good answer
            add(down["row"], "ratings", down["prompt"], up["reply"], down["reply"], up["version"], down["version"])
    return pairs, dict(unpaired)


def pairs_as_examples(pairs: list[dict]) -> pl.DataFrame:
    """Each pair as one example (prompt + chosen + rejected turns), so the prepare stage's code applies."""
    rows = []
    for pair in pairs:
        messages = [
            *pair["prompt"],
            {"role": "assistant", "content": pair["chosen"]},
            {"role": "assistant", "content": pair["rejected"]},
        ]
        rows.append(
            {
                "example_id": example_id_for(messages),
                "messages": messages,
                "source": "interaction",
                "source_path": pair["source_path"],
                "conversation_id": pair["interaction_id"],
                "created_at": pair["created_at"],
                "tags": [pair["kind"]],
                "chosen_version": pair["chosen_version"],
                "rejected_version": pair["rejected_version"],
            }
        )
    schema: dict[str, ColumnType] = {**EXAMPLE_SCHEMA, "chosen_version": pl.String, "rejected_version": pl.String}
    return pl.DataFrame(rows, schema=schema) if rows else pl.DataFrame(schema=schema)


def examples_as_pairs(frame: pl.DataFrame) -> pl.DataFrame:
    rows = []
    for row in frame.iter_rows(named=True):
        messages = row["messages"]
        rows.append(
            {
                "pair_id": row["example_id"],
                "prompt": messages[:-2],
                "chosen": messages[-2]["content"],
                "rejected": messages[-1]["content"],
                "kind": (row["tags"] or [None])[0],
                "interaction_id": row["conversation_id"],
                "chosen_version": row["chosen_version"],
                "rejected_version": row["rejected_version"],
                "source_path": row["source_path"],
                "created_at": row["created_at"],
            }
        )
    return pl.DataFrame(rows, schema=PAIR_SCHEMA) if rows else empty_pairs()


def build_preference_pairs(
    dirs: list[Path], settings, analyzer, embedder, cache_dir: Path | None = None
) -> tuple[pl.DataFrame, Quarantine, dict]:
    """Scrubbed, deduplicated preference pairs from the interaction folders, the quarantine, and a report.

    `settings` is ForgeSettings (its prepare.scrub / prepare.dedup / ingest.system_prompt apply);
    `analyzer` a presidio engine (prepare.pii.build_analyzer), `embedder` a prepare.embeddings.Embedder.
    """
    from forge_pipeline.prepare.dedup import deduplicate
    from forge_pipeline.prepare.pii import scrub_examples

    quarantine = Quarantine(STAGE)
    rows = read_interaction_records(dirs, quarantine)
    pairs, unpaired = raw_pairs(rows, settings.ingest.system_prompt)
    report = {
        "interactions": len(rows),
        "raw_pairs": len(pairs),
        "unpaired": unpaired,
        "by_kind": {},
        "pii_examples_changed": 0,
        "exact_dropped": 0,
        "near_dropped": 0,
    }
    if not pairs:
        return empty_pairs(), quarantine, report
    examples = pairs_as_examples(pairs)
    cache_dir = Path(cache_dir) if cache_dir is not None else settings.paths.cache
    scrubbed, scrub_report = scrub_examples(
        examples.select(list(EXAMPLE_SCHEMA)), settings.prepare.scrub, analyzer, cache_dir=cache_dir
    )
    # scrub_examples keeps EXAMPLE_SCHEMA columns; the version columns come back through original_example_id.
    versions = examples.select(
        pl.col("example_id").alias("original_example_id"), "chosen_version", "rejected_version"
    ).unique("original_example_id", keep="first", maintain_order=True)
    scrubbed = scrubbed.join(versions, on="original_example_id", how="left", maintain_order="left")
    # Its own dedup state: the SFT examples' incremental state must not be replaced by the pairs'.
    kept, dedup_quarantine, dedup_report = deduplicate(
        scrubbed, settings.prepare.dedup, embedder, cache_dir / "preference_pairs", stage=STAGE
    )
    quarantine.rows.extend({**r, "stage": STAGE} for r in dedup_quarantine.rows)
    result = examples_as_pairs(kept).sort(["created_at", "pair_id"], nulls_last=True)
    report.update(
        pii_examples_changed=scrub_report.examples_changed,
        exact_dropped=dedup_report.exact_dropped,
        near_dropped=dedup_report.near_dropped,
        by_kind=dict(result.group_by("kind").len().iter_rows()),
        pairs=result.height,
    )
    return result, quarantine, report


def dpo_rows(pairs: pl.DataFrame) -> list[dict]:
    """trl's conversational preference format: prompt turns, chosen and rejected as one assistant turn each."""
    return [
        {
            "prompt": [dict(m) for m in row["prompt"]],
            "chosen": [{"role": "assistant", "content": row["chosen"]}],
            "rejected": [{"role": "assistant", "content": row["rejected"]}],
        }
        for row in pairs.select("prompt", "chosen", "rejected").iter_rows(named=True)
    ]
