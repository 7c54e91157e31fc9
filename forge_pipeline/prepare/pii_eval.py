"""Recall and precision of the PII analyzer on the labelled set in data/pii_eval/messages.jsonl.

A detection counts as a true positive when it overlaps a labelled span of the same entity type (span
boundaries differ legitimately, e.g. "Call John" vs "John"); recall = labelled spans found / labelled spans,
precision = detections overlapping a same-type label / detections of that type.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

from forge_pipeline.prepare.config import ScrubSettings
from forge_pipeline.prepare.pii import analyze_texts

EVAL_SET = Path(__file__).resolve().parents[2] / "data" / "pii_eval" / "messages.jsonl"


def load_eval_set(path: Path = EVAL_SET) -> list[dict]:
    rows = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError as exc:
            raise ValueError(f"{path}:{n}: not valid JSON ({exc})") from exc
    return rows


def evaluate(analyzer, rows: list[dict], scrub: ScrubSettings) -> dict[str, dict]:
    found = analyze_texts(analyzer, [r["text"] for r in rows], scrub)
    gold_n, gold_hit, pred_n, pred_hit = Counter(), Counter(), Counter(), Counter()
    for row, dets in zip(rows, found):
        for g in row["spans"]:
            gold_n[g["entity_type"]] += 1
            gold_hit[g["entity_type"]] += any(d.entity_type == g["entity_type"] and d.start < g["end"]
                                               and d.end > g["start"] for d in dets)
        for d in dets:
            pred_n[d.entity_type] += 1
            pred_hit[d.entity_type] += any(d.entity_type == g["entity_type"] and d.start < g["end"]
                                           and d.end > g["start"] for g in row["spans"])
    table = {}
    for t in sorted(set(gold_n) | set(pred_n)):
        table[t] = {"labelled": gold_n[t], "detected": pred_n[t],
                    "recall": round(gold_hit[t] / gold_n[t], 3) if gold_n[t] else None,
                    "precision": round(pred_hit[t] / pred_n[t], 3) if pred_n[t] else None}
    return table


def markdown_table(table: dict[str, dict]) -> str:
    lines = ["| entity | labelled | detected | recall | precision |", "|---|---|---|---|---|"]
    for t, r in table.items():
        lines.append(f"| {t} | {r['labelled']} | {r['detected']} | {r['recall']} | {r['precision']} |")
    return "\n".join(lines)
