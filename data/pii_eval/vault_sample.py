"""What the scrub replaces as PERSON on a real vault, for labelling by hand (issue 29).

    .venv/bin/python data/pii_eval/vault_sample.py VAULT_DIR [--sample 120] [--seed 0] [--json out.json]
    .venv/bin/python data/pii_eval/vault_sample.py VAULT_DIR --labels data/pii_eval/vault_labels.jsonl

Reads the vault as the pipeline does (ingest's vault_notes and training_examples with default settings) and
runs the scrub's own detection (`detect_corpus` with the vault's people and concepts, exactly what
`scrub_examples` replaces). Prints per vault: examples, examples with a PERSON placeholder, placeholders in
prompts, and a seeded sample of PERSON placeholders, each with its note path, whether it is in the prompt, and
a context line (the person labels it `person` or `not`). The vault's text is printed, never stored: the
labels file holds only the vault, its commit, the note path, the value and the label.

With --labels: precision of PERSON over the labelled sample of this vault (value + path matched), and the
labelled false placeholders that sit in a prompt. With --names FILE (JSON lines {vault, path, value} of real
full names found by reading the vault): the share of them the scrub replaces (recall), over the names that are
in the vault's training examples at all.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))


def person_placeholders(vault: Path, cache_dir: Path | None = None) -> tuple[list[dict], int, dict[str, str]]:
    """[{path, value, prompt, context}] for every PERSON span the scrub replaces, the examples count, and the
    examples' text per note path (what could leak at all). With `cache_dir`, the analyzer's results per text are
    kept there (the scrub's own DetectionCache), so a rerun after a change to the rules skips the NER."""
    from forge_pipeline.ingest.conversations import conversations_frame
    from forge_pipeline.ingest.examples import build_training_examples
    from forge_pipeline.ingest.vault import read_vault
    from forge_pipeline.prepare.pii import build_analyzer, detect_corpus, known_names_of
    from forge_pipeline.prepare.pii.detection import DetectionCache
    from forge_pipeline.prepare.pii.vault import vault_markers
    from forge_pipeline.settings import ForgeSettings

    settings = ForgeSettings()
    notes, _ = read_vault(vault, settings.ingest)
    examples, _ = build_training_examples(notes, conversations_frame([]), settings)
    scrub = settings.prepare.scrub
    rows = [r for r in examples.to_dicts() if r["language"] in (None, *settings.prepare.filter.languages)]
    texts, where = [], []
    for r in rows:
        for m in r["messages"]:
            texts.append(m["content"] or "")
            where.append((r["source_path"], m["role"]))
    cache = DetectionCache(cache_dir, scrub) if cache_dir is not None else None
    found = detect_corpus(
        build_analyzer(scrub.spacy_model, scrub),
        texts,
        [list(r["tags"] or []) for r in rows for _ in r["messages"]],
        scrub,
        cache=cache,
        known_names=known_names_of(examples),
        markers=vault_markers(notes, scrub),
    )
    if cache is not None:
        cache.save()
    out, text_of = [], {}
    for (path, _), text in zip(where, texts):
        text_of[path] = text_of.get(path, "") + "\n" + text
    for (path, role), text, dets in zip(where, texts, found.texts):
        for d in dets:
            if d.entity_type == "PERSON":
                line_start = text.rfind("\n", 0, d.start) + 1
                line_end = text.find("\n", d.end)
                line = text[line_start : line_end if line_end != -1 else len(text)]
                out.append({"path": path, "value": text[d.start : d.end], "prompt": role == "user", "context": line})
    return out, len(rows), text_of


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("vault", type=Path)
    ap.add_argument("--sample", type=int, default=120)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--labels", type=Path, default=None)
    ap.add_argument("--names", type=Path, default=None)
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--cache", type=Path, default=None, help="keep the analyzer's results here for faster reruns")
    ap.add_argument("--false", action="store_true", help="with --labels: print the false placeholders in prompts")
    args = ap.parse_args()
    found, examples, text_of = person_placeholders(args.vault, args.cache)
    name = args.vault.name
    summary = {
        "vault": name,
        "examples": examples,
        "person_placeholders": len(found),
        "distinct_values": len({f["value"].casefold() for f in found}),
        "examples_with_person": len({f["path"] for f in found}),
        "in_prompts": sum(f["prompt"] for f in found),
    }
    if args.labels:
        labels = [json.loads(x) for x in args.labels.read_text().splitlines() if x.strip()]
        label_of = {(x["path"], x["value"]): x["label"] for x in labels if x["vault"] == name}
        judged = [f for f in found if (f["path"], f["value"]) in label_of]
        true = [f for f in judged if label_of[(f["path"], f["value"])] == "person"]
        summary["labelled"] = len(judged)
        summary["labelled_person"] = len(true)
        summary["precision"] = round(len(true) / len(judged), 3) if judged else None
        summary["false_in_prompts"] = sum(f["prompt"] for f in judged if f not in true)
        summary["unlabelled"] = len(found) - len(judged)
    if args.names:
        names = [json.loads(x) for x in args.names.read_text().splitlines() if x.strip()]
        # a name in a section that made no example (a licence list, a note too short) cannot leak
        mine = [n for n in names if n["vault"] == name and n["value"] in text_of.get(n["path"], "")]
        summary["labelled_names_not_in_examples"] = sum(n["vault"] == name for n in names) - len(mine)
        replaced = {(f["path"], f["value"].casefold()) for f in found}
        hit = [n for n in mine if any(p == n["path"] and n["value"].casefold() in v for p, v in replaced)]
        summary["real_full_names"] = len(mine)
        summary["recall"] = round(len(hit) / len(mine), 3) if mine else None
        summary["missed"] = [n["value"] for n in mine if n not in hit]
    print(json.dumps(summary, indent=2, ensure_ascii=False))
    if args.labels and args.false:
        for f in found:
            key = (f["path"], f["value"])
            if f["prompt"] and label_of.get(key, "unlabelled") != "person":
                ctx = " ".join(f["context"].split())[:200]
                print(json.dumps({"label": label_of.get(key), "path": f["path"], "value": f["value"], "ctx": ctx}))
    if not args.labels:
        for f in random.Random(args.seed).sample(found, min(args.sample, len(found))):
            ctx = " ".join(f["context"].split())[:200]
            print(
                json.dumps(
                    {"path": f["path"], "value": f["value"], "prompt": f["prompt"], "ctx": ctx}, ensure_ascii=False
                )
            )
    if args.json:
        args.json.write_text(json.dumps(summary, indent=2, ensure_ascii=False))


if __name__ == "__main__":
    main()
