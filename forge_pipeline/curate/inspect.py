"""What is in a dataset version, and what training it would cost.

`dataset_stats(version_dir)` returns a JSON-able dict (counts by split, source and tag, token lengths, PII
replaced, records dropped upstream, a sample and a training estimate) that `forge dataset show` prints and
the catalog can attach to `dataset_version` metadata; `token_length_histogram_png()` draws the lengths.

A version folder holds `version.json`, `train.jsonl` and `validation.jsonl` (one example per line with at
least `messages`; `source`, `tags` and `pii_replacements` are used when present).

Training estimate (an estimate, not a promise)
----------------------------------------------
time = tokens per epoch (each example cut at train.max_length) x epochs / tokens per second, where tokens
per second comes from runs measured on this project's hardware:

* CPU, 2 cores, the tiny demo Llama (2.23 M base parameters, 256/512 wide, 2 layers), LoRA r=16 on q/k/v/o,
  batch 4, AdamW: 13,600 tok/s at 128 tokens and 12,500 tok/s at 512 tokens per example (plain peft
  forward/backward loop, measured 2026-11-22); 12,500 is used.
* GPU, one H100: Llama-3.1-8B shape, NF4, LoRA r=16 q/k/v/o, padded batches of 4, gradient checkpointing,
  SDPA: 3,031 real tok/s at 14.6 GB peak (benchmarks/README.md, reference measurements).

Other model sizes scale the reference throughput by reference parameters / model parameters (compute per
token is ~6 x parameters); that extrapolation is labelled as such.

memory = base weights (parameters x 0.5 bytes for NF4 plus 3% for quantization constants, 2 for bf16, 4
for fp32 on CPU) + LoRA parameters x 16 bytes (fp32 weight, gradient and two Adam moments) + activations
(with gradient checkpointing batch x length x hidden x layers x 2 bytes plus one layer recomputed at
34 x batch x length x hidden bytes; without it 34 x batch x length x hidden bytes per layer (Korthikanti et
al. 2022, attention scores not materialised with SDPA)) + logits (batch x length x vocabulary x 4 bytes x
1.5 for the loss and its gradient) + 0.5 GB CUDA context on GPU. For the 8B reference shape this gives
~14.5 GB against the 14.6 GB measured. Length is the longest training example (padded batches).
"""

from __future__ import annotations

import io
import json
from collections import Counter
from pathlib import Path
from typing import NotRequired, TypedDict

import polars as pl

# One token count for the whole project: the catalog stores token_stats with it, so `dataset show` must agree.
from forge_pipeline.catalog.versions import approx_tokens, token_stats
from forge_pipeline.errors import ForgeError
from forge_pipeline.records import read_jsonl
from forge_pipeline.settings import ForgeSettings, load_settings
from forge_pipeline.train.config import TrainSettings


class ThroughputReference(TypedDict):
    """A measured training speed; an estimate for another model scales it by parameter count."""

    tokens_per_s: float
    params: int
    what: str
    peak_gb: NotRequired[float]


CPU_REFERENCE: ThroughputReference = {
    "tokens_per_s": 12_500,
    "params": 2_229_504,
    "what": "tiny demo Llama, 2 CPU cores, LoRA r=16, batch 4, 2026-11-22",
}
GPU_REFERENCE: ThroughputReference = {
    "tokens_per_s": 3_031,
    "params": 8_030_261_248,
    "peak_gb": 14.6,
    "what": "Llama-3.1-8B shape on one H100, NF4, LoRA r=16, batch 4, gradient checkpointing",
}


class DatasetNotFound(ForgeError, FileNotFoundError):
    pass


def resolve_version(settings: ForgeSettings, version: str) -> Path:
    """A version id (or `latest`, or a folder path) to its folder, using catalog.json when there is one."""
    as_path = Path(version)
    if as_path.is_dir() and (as_path / "train.jsonl").exists():
        return as_path
    from forge_pipeline.catalog.versions import read_catalog

    catalog_dir = settings.paths.catalog
    catalog = read_catalog(settings)  # raises CatalogError naming catalog.json when it is damaged
    versions = catalog["versions"]
    known = [str(v.get("version_id")) for v in versions]
    if version == "latest" and versions:
        version = str(catalog.get("latest") or known[-1])
    # Version ids are content hashes: a unique prefix is enough, as with git.
    matches = [v for v in versions if str(v.get("version_id")) == version] or [
        v for v in versions if str(v.get("version_id")).startswith(version)
    ]
    if len(matches) > 1:
        raise DatasetNotFound(f"dataset version {version!r} is ambiguous: {[m['version_id'] for m in matches]}")
    if matches:
        return Path(matches[0]["path"])
    if (catalog_dir / version / "train.jsonl").exists():
        return catalog_dir / version
    hint = f"known versions: {', '.join(known)}" if known else "no versions yet: run `forge demo` first"
    raise DatasetNotFound(f"dataset version {version!r} not found under {catalog_dir} ({hint})")


def _read_jsonl(path: Path) -> list[dict]:
    if not path.exists():
        return []
    return read_jsonl(path)


# -- model shape, throughput and memory ----------------------------------------------------------------
def model_shape(train: TrainSettings) -> dict | None:
    """Llama-style shape of the configured base model (tiny demo model or a local config.json)."""
    from forge_pipeline.train.base_models import PACKAGED, TINY_DEMO

    if train.base_model in PACKAGED:
        shape = {"name": train.base_model, **PACKAGED[train.base_model].shape}
    elif train.base_model in (None, TINY_DEMO):
        t = train.tiny_model
        shape = {
            "name": "tiny demo Llama",
            "vocab_size": t.vocab_size,
            "hidden_size": t.hidden_size,
            "intermediate_size": t.intermediate_size,
            "num_hidden_layers": t.num_hidden_layers,
            "num_attention_heads": t.num_attention_heads,
            "num_key_value_heads": t.num_key_value_heads,
            "tie_word_embeddings": False,
        }
    else:
        config = Path(train.base_model) / "config.json"
        if not config.exists():
            return None
        raw = json.loads(config.read_text())
        raw = raw.get("text_config", raw)
        try:
            shape = {
                "name": train.base_model,
                **{
                    k: raw[k]
                    for k in (
                        "vocab_size",
                        "hidden_size",
                        "intermediate_size",
                        "num_hidden_layers",
                        "num_attention_heads",
                    )
                },
            }
        except KeyError:
            return None
        shape["num_key_value_heads"] = raw.get("num_key_value_heads", raw["num_attention_heads"])
        shape["tie_word_embeddings"] = bool(raw.get("tie_word_embeddings", False))
    h, layers = shape["hidden_size"], shape["num_hidden_layers"]
    kv = h // shape["num_attention_heads"] * shape["num_key_value_heads"]
    per_layer = 2 * h * h + 2 * h * kv + 3 * h * shape["intermediate_size"] + 2 * h
    embeddings = shape["vocab_size"] * h * (1 if shape["tie_word_embeddings"] else 2)
    shape["params"] = embeddings + layers * per_layer + h
    shape["kv_dim"] = kv
    return shape


def _lora_params(shape: dict, train: TrainSettings) -> int:
    h, kv, inter = shape["hidden_size"], shape["kv_dim"], shape["intermediate_size"]
    dims = {
        "q_proj": (h, h),
        "k_proj": (h, kv),
        "v_proj": (h, kv),
        "o_proj": (h, h),
        "gate_proj": (h, inter),
        "up_proj": (h, inter),
        "down_proj": (inter, h),
    }
    per_layer = sum(train.lora_r * (i + o) for name, (i, o) in dims.items() if name in train.target_modules)
    return per_layer * shape["num_hidden_layers"]


def detect_hardware(setting: str) -> str:
    if setting != "auto":
        return setting
    # Cheap check (no torch import): the NVIDIA kernel driver exposes this file when a GPU is usable.
    return "gpu" if Path("/proc/driver/nvidia/version").exists() else "cpu"


def estimate_training(train_tokens: list[int], train: TrainSettings, hardware: str) -> dict:
    """Time and memory estimate for training on these example lengths (see the module docstring)."""
    lengths = [min(n, train.max_length) for n in train_tokens]
    per_epoch = sum(lengths)
    total = per_epoch * train.num_train_epochs
    shape = model_shape(train)
    estimate: dict = {
        "hardware": hardware,
        "tokens_per_epoch": per_epoch,
        "epochs": train.num_train_epochs,
        "total_tokens": int(total),
    }
    if shape is None:
        estimate["note"] = (
            f"unknown model shape for train.base_model={train.base_model!r}: point it to a local "
            "folder with config.json for an estimate"
        )
        return estimate
    params = shape["params"]
    reference = GPU_REFERENCE if hardware == "gpu" else CPU_REFERENCE
    tokens_per_s = reference["tokens_per_s"] * reference["params"] / params
    close = 0.8 <= params / reference["params"] <= 1.25
    estimate.update(
        {
            "model": shape["name"],
            "params": params,
            "tokens_per_s": round(tokens_per_s, 1),
            "throughput_basis": ("measured: " if close else "extrapolated by parameter count from: ")
            + reference["what"],
            "seconds": round(total / tokens_per_s, 3) if tokens_per_s else None,
            "excludes": "start-up (imports, model load: ~10 s on CPU), evaluation and checkpoint saves",
        }
    )
    # Memory.
    quantized = train.quantization == "nf4" or (train.quantization == "auto" and hardware == "gpu")
    bytes_per_param = 0.5 * 1.03 if quantized else (2.0 if hardware == "gpu" else 4.0)
    weights = params * bytes_per_param
    lora = _lora_params(shape, train) * 16
    batch = train.per_device_train_batch_size
    length = max(lengths) if lengths else 0
    h, layers = shape["hidden_size"], shape["num_hidden_layers"]
    activation_scale = 1.0 if hardware == "gpu" else 2.0  # fp32 activations on CPU
    checkpointing = train.gradient_checkpointing if train.gradient_checkpointing is not None else hardware == "gpu"
    if checkpointing:
        activations = batch * length * h * layers * 2 + 34 * batch * length * h
    else:
        activations = 34 * batch * length * h * layers
    activations *= activation_scale
    logits = batch * length * shape["vocab_size"] * 4 * 1.5
    overhead = 0.5e9 if hardware == "gpu" else 0.0
    total_bytes = weights + lora + activations + logits + overhead
    gb = 1e9
    estimate["memory_gb"] = {
        "total": round(total_bytes / gb, 3),
        "weights": round(weights / gb, 3),
        "lora_and_optimizer": round(lora / gb, 3),
        "activations": round(activations / gb, 3),
        "logits": round(logits / gb, 3),
        "context": round(overhead / gb, 3),
        "assumes": (
            f"{'NF4' if quantized else 'bf16' if hardware == 'gpu' else 'fp32'} weights, batch {batch}, "
            f"longest example {length} tokens, gradient checkpointing {'on' if checkpointing else 'off'}"
        ),
    }
    return estimate


# -- upstream drops and PII ----------------------------------------------------------------------------
def quarantine_summary(settings: ForgeSettings) -> dict:
    """Counts of dropped records by stage and reason, from <data_root>/quarantine/*.parquet."""
    by_stage: dict[str, dict[str, int]] = {}
    for path in sorted(settings.paths.quarantine.glob("*.parquet")):
        frame = pl.read_parquet(path, columns=["reason"])
        if frame.height:
            by_stage[path.stem] = dict(frame.group_by("reason").len().sort("reason").iter_rows())
    duplicates = sum(n for reasons in by_stage.values() for reason, n in reasons.items() if "dup" in reason.lower())
    return {"dropped_by_stage": by_stage, "duplicates_removed": duplicates}


def _pii_counts(rows: list[dict], settings: ForgeSettings) -> tuple[dict[str, int], str]:
    """PII replacements by entity type, and where they were read from.

    The version's own `pii_replacements` column is used when the catalog kept it; otherwise the curated table
    (which carries the column through from the PII step) is joined on example_id.
    """
    if not any("pii_replacements" in row for row in rows):
        table = settings.paths.tables / "curated_examples.parquet"
        if not table.exists() or "pii_replacements" not in pl.read_parquet_schema(table):
            return {}, "not recorded"
        ids = {row.get("example_id") for row in rows}
        frame = pl.read_parquet(table, columns=["example_id", "pii_replacements"])
        rows = [r for r in frame.iter_rows(named=True) if r["example_id"] in ids]
        where = str(table)
    else:
        where = "the version's pii_replacements column"
    counts: Counter = Counter()
    for row in rows:
        for item in row.get("pii_replacements") or []:
            if isinstance(item, dict):
                counts[item.get("entity_type") or "UNKNOWN"] += 1
    return dict(sorted(counts.items())), where


# -- the stats and the plot ---------------------------------------------------------------------------
def dataset_stats(version_dir: Path, settings: ForgeSettings | None = None, *, hardware: str | None = None) -> dict:
    settings = settings or load_settings()
    version_dir = Path(version_dir)
    if not (version_dir / "train.jsonl").exists():
        raise DatasetNotFound(f"{version_dir}: no train.jsonl (not a dataset version folder)")
    info = json.loads((version_dir / "version.json").read_text()) if (version_dir / "version.json").exists() else {}
    splits = {
        "train": _read_jsonl(version_dir / "train.jsonl"),
        "validation": _read_jsonl(version_dir / "validation.jsonl"),
    }
    every = splits["train"] + splits["validation"]
    by_source = Counter(str(r.get("source") or "unknown") for r in every)
    by_tag = Counter(tag for r in every for tag in (r.get("tags") or []))
    tokens = {name: [approx_tokens(r.get("messages") or []) for r in rows] for name, rows in splits.items()}
    all_tokens = sorted(tokens["train"] + tokens["validation"])

    curate = settings.curate
    pii_replaced, pii_from = _pii_counts(every, settings)
    stats = {
        "version_id": info.get("version_id", version_dir.name),
        "path": str(version_dir),
        "counts": {name: len(rows) for name, rows in splits.items()},
        "by_source": dict(by_source.most_common()),
        "by_tag": dict(by_tag.most_common()),
        "by_curation_status": dict(Counter(str(r.get("curation_status")) for r in every if "curation_status" in r)),
        "tokens": {
            "total": sum(all_tokens),
            **token_stats(all_tokens),
            "over_max_length": sum(n > settings.train.max_length for n in all_tokens),
            # per split, by the same function that wrote the catalog's token_stats
            "by_split": {name: token_stats(lengths) for name, lengths in tokens.items()},
            "counting": "approximate: words and punctuation marks (as the catalog's token_stats)",
        },
        "pii_replaced": pii_replaced,
        "pii_replaced_from": pii_from,
        **quarantine_summary(settings),
        "sample": [
            {"source": r.get("source"), "tags": r.get("tags"), "messages": r.get("messages")}
            for r in splits["train"][: curate.sample_size]
        ],
        "estimate": estimate_training(
            tokens["train"], settings.train, hardware or detect_hardware(curate.estimate_hardware)
        ),
    }
    return stats


def token_lengths(version_dir: Path) -> dict[str, list[int]]:
    return {
        name: [approx_tokens(r.get("messages") or []) for r in _read_jsonl(Path(version_dir) / f"{name}.jsonl")]
        for name in ("train", "validation")
    }


def token_length_histogram_png(lengths: dict[str, list[int]], max_length: int | None = None, bins: int = 30) -> bytes:
    """A PNG histogram of example lengths per split (the max_length cut drawn as a line)."""
    import matplotlib

    matplotlib.use("Agg")
    import numpy as np
    from matplotlib.figure import Figure

    figure = Figure(figsize=(6, 3.2), dpi=100)
    axes = figure.subplots()
    everything = [n for values in lengths.values() for n in values]
    # Shared edges so the splits' bars line up; the range is the data's so short examples stay visible.
    edges = np.histogram_bin_edges(everything or [0, 1], bins=bins)
    for name, values in lengths.items():
        if values:
            axes.hist(values, bins=edges.tolist(), alpha=0.6, label=f"{name} ({len(values)})")
    if max_length and everything and max(everything) >= max_length / 2:
        axes.axvline(max_length, color="red", linestyle="--", label=f"max_length {max_length}")
    elif max_length:
        axes.set_title(f"all examples well under max_length {max_length}", fontsize=9)
    axes.set_xlabel("tokens per example (approximate)")
    axes.set_ylabel("examples")
    axes.legend()
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()


def write_histogram(version_dir: Path, settings: ForgeSettings, version_id: str | None = None) -> Path:
    """Save the plot under <data_root>/reports/<version>/ (version folders stay as the catalog wrote them)."""
    from forge_pipeline.atomic import write_bytes_atomic

    png = token_length_histogram_png(
        token_lengths(version_dir), settings.train.max_length, settings.curate.histogram_bins
    )
    target = settings.paths.root / "reports" / (version_id or Path(version_dir).name) / "token_lengths.png"
    target.parent.mkdir(parents=True, exist_ok=True)
    return write_bytes_atomic(target, png)
