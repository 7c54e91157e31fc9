"""A tiny, repetitive dataset version for training tests and demos (learnable in a few steps)."""

from __future__ import annotations

import json
from pathlib import Path

_REPLIES = [
    "Write the rollback step before touching production.",
    "Short linked notes beat long notes nobody reads.",
    "Decide by writing down what you would regret most.",
]


def tiny_examples(n: int = 24) -> list[dict]:
    return [
        {
            "messages": [
                {"role": "system", "content": "You answer like the vault's author."},
                {"role": "user", "content": f"Question {i}: what is rule {i % len(_REPLIES)}?"},
                {"role": "assistant", "content": _REPLIES[i % len(_REPLIES)]},
            ]
        }
        for i in range(n)
    ]


def write_tiny_dataset_version(
    folder: Path, n: int = 24, n_validation: int = 4, version_id: str = "v-test", save_hf: bool = True
) -> dict:
    """train.jsonl / validation.jsonl (+ the HF DatasetDict, like the catalog writes) and the asset-style dict."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    rows = tiny_examples(n)
    splits = {"train": rows[: n - n_validation], "validation": rows[n - n_validation :]}
    for split, split_rows in splits.items():
        if split_rows:
            (folder / f"{split}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in split_rows))
    if save_hf:
        from datasets import Dataset, DatasetDict

        DatasetDict({k: Dataset.from_list(v) for k, v in splits.items() if v}).save_to_disk(str(folder / "hf"))
    return {
        "version_id": version_id,
        "path": str(folder),
        "train_examples": len(splits["train"]),
        "validation_examples": len(splits["validation"]),
    }
