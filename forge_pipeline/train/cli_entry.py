"""Train a LoRA adapter from a dataset version folder, outside Dagster (also what `accelerate launch` runs).

    python -m forge_pipeline.train.cli_entry --dataset-dir <catalog>/<version> [--base-model DIR]
        [--output-dir DIR] [--set learning_rate=1e-4 --set max_steps=100 ...]
    accelerate launch --num_processes 2 -m forge_pipeline.train.cli_entry --dataset-dir ...

Without --base-model, the base model comes from settings (train.base_model: smollm2-135m-instruct by default,
tiny-demo, or a local folder; see forge_pipeline.train.base_models). Without --output-dir, the run goes to <data_root>/adapters/<run key>, so re-running
the same command after a crash resumes from the latest checkpoint. Progress is printed as JSON lines,
the result as one JSON object on the last line.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path


def _parse_overrides(pairs: list[str]) -> dict:
    overrides = {}
    for pair in pairs:
        name, sep, raw = pair.partition("=")
        if not sep:
            raise SystemExit(f"--set {pair!r}: expected NAME=VALUE (e.g. learning_rate=1e-4)")
        try:
            overrides[name] = json.loads(raw)
        except json.JSONDecodeError:
            overrides[name] = raw
    return overrides


def main(argv: list[str] | None = None) -> dict:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    parser = argparse.ArgumentParser(
        prog="python -m forge_pipeline.train.cli_entry", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--dataset-dir", required=True, type=Path, help="folder with train.jsonl / validation.jsonl")
    parser.add_argument("--dataset-version", default=None, help="version id recorded in MLflow (default: folder name)")
    parser.add_argument(
        "--base-model",
        default=None,
        help="short name (smollm2-135m-instruct, tiny-demo) or local HF model folder (default: from settings)",
    )
    parser.add_argument("--output-dir", default=None, type=Path)
    parser.add_argument("--data-root", default=None, type=Path)
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="override a train.* setting for this run (repeatable)",
    )
    args = parser.parse_args(argv)

    from forge_pipeline.settings import load_settings
    from forge_pipeline.train.base_models import resolve_base_model
    from forge_pipeline.train.sft import corpus_texts, dataset_content_hash, run_key, train_lora

    settings = load_settings(**({"data_root": args.data_root} if args.data_root else {}))
    overrides = _parse_overrides(args.overrides)
    unknown = sorted(set(overrides) - set(type(settings.train).model_fields))
    if unknown:
        raise SystemExit(
            f"--set: unknown train setting(s) {unknown}; known: {sorted(type(settings.train).model_fields)}"
        )
    from pydantic import ValidationError

    try:  # validated like settings: a bad override fails here, naming the field, not inside the trainer
        hp = type(settings.train).model_validate({**settings.train.model_dump(), **overrides})
    except ValidationError as err:
        raise SystemExit(
            "--set: " + "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in err.errors())
        ) from None
    settings.paths.ensure()
    if args.base_model:
        hp = hp.model_copy(update={"base_model": args.base_model})
    base = resolve_base_model(settings.model_copy(update={"train": hp}), corpus_texts(args.dataset_dir))
    output_dir = args.output_dir or settings.paths.adapters / run_key(
        dataset_content_hash(args.dataset_dir), hp, base["path"]
    )

    def progress(entry: dict) -> None:
        print(json.dumps(entry, default=str), flush=True)

    result = train_lora(
        args.dataset_dir,
        base["path"],
        output_dir,
        hp,
        settings.tracking_uri,
        settings.mlflow_experiment,
        progress=progress,
        dataset_version=args.dataset_version or args.dataset_dir.name,
        base_model_name=base["name"],
        is_demo_model=base["is_demo_model"],
    )
    if result:  # non-main ranks under accelerate return {}
        print(json.dumps(result, default=str), flush=True)
    return result


if __name__ == "__main__":
    main(sys.argv[1:])
