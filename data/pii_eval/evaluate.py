"""Recall and precision of the PII scrubber's detection on the labelled evaluation sets, per type and per form.

    .venv/bin/python data/pii_eval/evaluate.py                    # both sets, default settings
    .venv/bin/python data/pii_eval/evaluate.py --ablation         # plus one row per feature switched off
    .venv/bin/python data/pii_eval/evaluate.py --json out.json
    .venv/bin/python data/pii_eval/evaluate.py --set journal --alone   # each message scrubbed on its own

Sets: `data/pii_eval_journal/messages.jsonl` (journal-style writing, the main set) and
`data/pii_eval/messages.jsonl` (the older template set, kept as a regression set). Detection runs over the
whole set at once, as over a dataset, so corpus-level name propagation sees every message and tag; with
`--alone` each message is scrubbed on its own (a note mentioned once in a vault gets no help from others).

A labelled value counts as found when a detection of the same type overlaps it (span boundaries differ
legitimately, e.g. "Call John" vs "John"); `covered` also counts the share of labelled values whose every
character lies inside some detection of any type (what matters for privacy: no part survives).
precision = detections overlapping a same-type label / detections of that type.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter, defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from forge_pipeline.prepare.config import ScrubSettings  # noqa: E402  (the repo root goes on sys.path first)

SETS = {
    "journal": ROOT / "data" / "pii_eval_journal" / "messages.jsonl",
    "regression": ROOT / "data" / "pii_eval" / "messages.jsonl",
}
# Each ablation switches one part of the scrubber off, to measure what it buys.
ABLATIONS = {
    "no_name_propagation": {"propagate_names": False},
    "no_org_loc_names": {"org_loc_as_person": False},
    "us_phone_region_only": {"phone_regions": ["US"]},
    "no_forge_address_patterns": {"address_patterns": False},
    "no_code_rule": {"skip_code": False},
}


def load_eval_set(path: Path) -> list[dict]:
    rows = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ValueError(f"{path}:{n}: not valid JSON ({exc})") from exc
        row.setdefault("tags", [])
        row.setdefault("kind", "template")
        for span in row["spans"]:
            span.setdefault("field", "text")
            span.setdefault("index", 0)
            span.setdefault("form", span["entity_type"].lower())
        rows.append(row)
    return rows


def _overlaps(a, b) -> bool:
    return a.start < b["end"] and a.end > b["start"]


def detect(analyzer, rows: list[dict], scrub: ScrubSettings, alone: bool):
    """Detections over the whole set (as over a dataset), or each message alone (alone=True: presidio runs
    once over all texts, batched, and each message then goes through the corpus rules by itself)."""
    import tempfile

    from forge_pipeline.prepare.pii import CorpusDetections, DetectionCache, detect_corpus

    texts, tags = [r["text"] for r in rows], [r["tags"] for r in rows]
    if not alone:
        return detect_corpus(analyzer, texts, tags, scrub)
    with tempfile.TemporaryDirectory() as tmp:
        cache = DetectionCache(tmp, scrub)
        detect_corpus(analyzer, texts, None, scrub, cache=cache)  # fills the cache in one batched pass
        each = [detect_corpus(analyzer, [t], [g], scrub, cache=cache) for t, g in zip(texts, tags)]
    return CorpusDetections([e.texts[0] for e in each], [e.tags[0] for e in each], [])


def evaluate(analyzer, rows: list[dict], scrub: ScrubSettings, alone: bool = False) -> dict:
    """{"by_type": {...}, "by_form": {...}, "precision_by_kind": {...}, "false_positives_by_kind": {...}}."""
    found = detect(analyzer, rows, scrub, alone)
    gold_n, gold_hit, covered, pred_n, pred_hit = Counter(), Counter(), Counter(), Counter(), Counter()
    form_n, form_hit, fp_kind, kind_n, kind_hit = Counter(), Counter(), Counter(), Counter(), Counter()
    for i, row in enumerate(rows):
        fields = {("text", 0): found.texts[i]} | {("tags", j): d for j, d in enumerate(found.tags[i])}
        labels = defaultdict(list)
        for g in row["spans"]:
            labels[(g["field"], g["index"])].append(g)
            dets = fields[(g["field"], g["index"])]
            hit = any(d.entity_type == g["entity_type"] and _overlaps(d, g) for d in dets)
            whole = all(any(d.start <= k < d.end for d in dets) for k in range(g["start"], g["end"]))
            t, f = g["entity_type"], (g["entity_type"], g["form"])
            gold_n[t] += 1
            gold_hit[t] += hit
            covered[t] += whole
            form_n[f] += 1
            form_hit[f] += hit
        for key, dets in fields.items():
            for d in dets:
                ok = any(d.entity_type == g["entity_type"] and _overlaps(d, g) for g in labels[key])
                pred_n[d.entity_type] += 1
                pred_hit[d.entity_type] += ok
                kind_n[(row["kind"], d.entity_type)] += 1
                kind_hit[(row["kind"], d.entity_type)] += ok
                if not ok:
                    fp_kind[f"{row['kind']}:{d.entity_type}"] += 1
    by_type = {}
    for t in sorted(set(gold_n) | set(pred_n)):
        by_type[t] = {
            "labelled": gold_n[t],
            "detected": pred_n[t],
            "recall": round(gold_hit[t] / gold_n[t], 3) if gold_n[t] else None,
            "covered": round(covered[t] / gold_n[t], 3) if gold_n[t] else None,
            "precision": round(pred_hit[t] / pred_n[t], 3) if pred_n[t] else None,
        }
    by_form = {
        f"{t}/{f}": {"labelled": form_n[(t, f)], "recall": round(form_hit[(t, f)] / form_n[(t, f)], 3)}
        for t, f in sorted(form_n)
    }
    by_kind = {
        f"{k}/{t}": {"detected": n, "precision": round(kind_hit[(k, t)] / n, 3)} for (k, t), n in sorted(kind_n.items())
    }
    return {
        "by_type": by_type,
        "by_form": by_form,
        "precision_by_kind": by_kind,
        "false_positives_by_kind": dict(sorted(fp_kind.items())),
    }


def markdown(result: dict) -> str:
    lines = ["| entity | labelled | detected | recall | covered | precision |", "|---|---|---|---|---|---|"]
    lines += [
        f"| {t} | {r['labelled']} | {r['detected']} | {r['recall']} | {r['covered']} | {r['precision']} |"
        for t, r in result["by_type"].items()
    ]
    precision = {t: r["precision"] for t, r in result["by_type"].items()}
    lines += ["", "| form | labelled | recall | precision of its type |", "|---|---|---|---|"]
    lines += [
        f"| {f} | {r['labelled']} | {r['recall']} | {precision.get(f.split('/')[0])} |"
        for f, r in result["by_form"].items()
    ]
    lines += ["", "| message kind / type | detected | precision |", "|---|---|---|"]
    lines += [f"| {k} | {r['detected']} | {r['precision']} |" for k, r in result["precision_by_kind"].items()]
    lines += ["", "false positives by message kind: " + json.dumps(result["false_positives_by_kind"])]
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--set", choices=[*SETS, "all"], default="all")
    ap.add_argument("--ablation", action="store_true", help="also evaluate with each feature switched off")
    ap.add_argument("--spacy-model", default=None, help="spaCy package name or model folder (default: settings)")
    ap.add_argument("--alone", action="store_true", help="scrub each message on its own (no corpus help)")
    ap.add_argument("--json", type=Path, default=None, help="write all results to this file")
    args = ap.parse_args()
    from forge_pipeline.prepare.pii import build_analyzer

    base = ScrubSettings(**({"spacy_model": args.spacy_model} if args.spacy_model else {}))
    analyzer = build_analyzer(base.spacy_model)
    results = {}
    for name in SETS if args.set == "all" else [args.set]:
        rows = load_eval_set(SETS[name])
        runs = {"default": base} | (
            {k: base.model_copy(update=v) for k, v in ABLATIONS.items()} if args.ablation else {}
        )
        for run, scrub in runs.items():
            rebuild = (scrub.phone_regions, scrub.address_patterns) != (base.phone_regions, base.address_patterns)
            engine = build_analyzer(scrub.spacy_model, scrub) if rebuild else analyzer
            result = evaluate(engine, rows, scrub, alone=args.alone)
            mode = "each message alone" if args.alone else "whole set"
            results[f"{name}/{run}" + ("/alone" if args.alone else "")] = result
            print(f"\n## {name} set ({len(rows)} messages, {mode}), {run}\n")
            print(markdown(result) if run == "default" else "\n".join(markdown(result).split("\n\n")[0:1]))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2, ensure_ascii=False))


if __name__ == "__main__":
    main()
