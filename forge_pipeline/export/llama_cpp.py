"""The llama.cpp toolchain: its own HF→GGUF and LoRA→GGUF converters, and its quantizer.

The converter scripts must match the installed llama-cpp-python (the copy taken from its source
distribution at set-up), and they need their vendored gguf-py ahead of the PyPI `gguf` package, which
lacks newer classes. They run as subprocesses so a converter crash cannot take the pipeline down.
Every output is written under a temporary name and renamed into place only when complete.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from forge_pipeline.atomic import atomic_path
from forge_pipeline.errors import ForgeError
from forge_pipeline.export.config import ExportSettings

logger = logging.getLogger(__name__)
CONVERTER_FOLDER = "llama_cpp_convert"
UNKNOWN_PRE_TOKENIZER = "BPE pre-tokenizer was not recognized"
FALLBACK_SCRIPT = Path(__file__).with_name("gpt2_pre_tokenizer_fallback.py")


class ConversionError(ForgeError, RuntimeError):
    """A converter or the quantizer failed; the message carries the command's last output lines."""


@dataclass(frozen=True)
class ConversionResult:
    path: Path
    seconds: float
    declared_gpt2_pre_tokenizer: bool
    pre_tokenizer: str | None = None  # what the converter wrote as tokenizer.ggml.pre (None for adapters)


def default_converter_dir() -> Path:
    """Where the converter copy is looked for when export.converter_dir is unset: a source checkout's
    `.cache/llama_cpp_convert` (where scripts/setup.sh extracts it), else the user's cache folder
    ($XDG_CACHE_HOME or ~/.cache, then forge/llama_cpp_convert). Forge only reads the folder; an installed Forge
    never looks beside site-packages, which holds no pyproject.toml."""
    checkout = Path(__file__).resolve().parents[2]
    extracted = checkout / ".cache" / CONVERTER_FOLDER
    if (checkout / "pyproject.toml").is_file() and extracted.is_dir():
        return extracted
    cache_home = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(cache_home) / "forge" / CONVERTER_FOLDER


class LlamaCppToolchain:
    """Locates the converter folder and runs the converters and the quantizer."""

    def __init__(self, converter_dir: str | Path | None = None, timeout_s: float = 1800.0):
        self.converter_dir = Path(converter_dir or default_converter_dir()).resolve()
        self.timeout_s = timeout_s
        missing = [
            name
            for name in ("convert_hf_to_gguf.py", "convert_lora_to_gguf.py", "conversion", "gguf-py")
            if not (self.converter_dir / name).exists()
        ]
        if missing:
            raise ConversionError(
                f"llama.cpp converter folder {self.converter_dir} lacks {', '.join(missing)}; set export.converter_dir "
                "to the folder taken from the installed llama-cpp-python source distribution (vendor/llama.cpp)"
            )

    @classmethod
    def from_settings(cls, settings: ExportSettings) -> LlamaCppToolchain:
        return cls(settings.converter_dir, settings.converter_timeout_s)

    def _run(self, script: str, args: list[str], with_fallback: bool) -> subprocess.CompletedProcess:
        env = {
            **os.environ,
            "HF_HUB_OFFLINE": "1",
            "PYTHONPATH": os.pathsep.join(
                [str(self.converter_dir / "gguf-py"), str(self.converter_dir), os.environ.get("PYTHONPATH", "")]
            ),
        }
        script_path = str(self.converter_dir / script)
        command = (
            [sys.executable, str(FALLBACK_SCRIPT), str(self.converter_dir), script_path, *args]
            if with_fallback
            else [sys.executable, script_path, *args]
        )
        try:
            return subprocess.run(command, env=env, capture_output=True, text=True, timeout=self.timeout_s)
        except subprocess.TimeoutExpired:
            raise ConversionError(f"{script} ran longer than {self.timeout_s} s (export.converter_timeout_s)") from None

    def _convert(self, script: str, args: list[str], out_path: Path) -> ConversionResult:
        out_path = Path(out_path)
        started = time.perf_counter()
        with atomic_path(out_path) as tmp:
            full_args = [*args, "--outfile", str(tmp)]
            done = self._run(script, full_args, with_fallback=False)
            fallback = False
            # Only a tokenizer the converter cannot identify gets the gpt-2 declaration; any other failure is real.
            if done.returncode != 0 and UNKNOWN_PRE_TOKENIZER in done.stderr + done.stdout:
                fallback = True
                done = self._run(script, full_args, with_fallback=True)
            if done.returncode != 0:
                tail = "\n".join((done.stderr or done.stdout).strip().splitlines()[-15:])
                raise ConversionError(f"{script} {' '.join(args)} failed (exit {done.returncode}):\n{tail}")
            if tmp.stat().st_size == 0:
                raise ConversionError(f"{script} {' '.join(args)} exited 0 but wrote nothing")
            pre = gguf_metadata(tmp).get("tokenizer.ggml.pre")
        if pre is not None:
            how = "declared gpt-2 after the converter did not recognise the tokenizer" if fallback else "recognised"
            logger.info("%s: BPE pre-tokenizer %r (%s)", out_path.name, pre, how)
        return ConversionResult(out_path, time.perf_counter() - started, fallback, pre)

    def convert_model(self, model_dir: Path, out_path: Path, outtype: str = "f16") -> ConversionResult:
        """A Hugging Face model folder → one GGUF file."""
        return self._convert("convert_hf_to_gguf.py", [str(model_dir), "--outtype", outtype], out_path)

    def convert_adapter(
        self, adapter_dir: Path, base_dir: Path, out_path: Path, outtype: str = "f16"
    ) -> ConversionResult:
        """A peft LoRA folder → a GGUF adapter. `--base` always: adapter_config.json may name a hub id or
        another machine's path, and offline the converter would otherwise try the hub."""
        return self._convert(
            "convert_lora_to_gguf.py", [str(adapter_dir), "--base", str(base_dir), "--outtype", outtype], out_path
        )


def quant_ftype(quant_type: str) -> int:
    import llama_cpp

    name = quant_type.upper().removeprefix("LLAMA_FTYPE_MOSTLY_")
    value = getattr(llama_cpp, f"LLAMA_FTYPE_MOSTLY_{name}", None)
    if value is None:
        known = sorted(
            n.removeprefix("LLAMA_FTYPE_MOSTLY_") for n in dir(llama_cpp) if n.startswith("LLAMA_FTYPE_MOSTLY_")
        )
        raise ConversionError(
            f"export.quant_type={quant_type!r} is not a llama.cpp type; use one of {', '.join(known)}"
        )
    return value


def quantize(src: Path, dst: Path, quant_type: str, threads: int = 0) -> float:
    """Quantize a GGUF with llama.cpp's own quantizer; `dst` appears only when complete. Returns seconds."""
    import llama_cpp
    from llama_cpp._logger import set_verbose

    ftype = quant_ftype(quant_type)
    set_verbose(False)  # llama.cpp logs every tensor; errors still surface through the return status
    started = time.perf_counter()
    with atomic_path(Path(dst)) as tmp:
        params = llama_cpp.llama_model_quantize_default_params()
        params.ftype = ftype
        params.nthread = threads
        status = llama_cpp.llama_model_quantize(str(src).encode(), str(tmp).encode(), params)
        if status != 0:
            raise ConversionError(f"llama_model_quantize({src} → {quant_type}) returned {status}")
    return time.perf_counter() - started


def gguf_n_params(path: Path) -> int:
    from gguf import GGUFReader

    return int(sum(int(tensor.n_elements) for tensor in GGUFReader(str(path)).tensors))


def gguf_stats(path: Path, n_params: int | None = None) -> dict:
    """Size and bits per weight of a GGUF file (file bytes * 8 / parameters, metadata included)."""
    path = Path(path)
    size = path.stat().st_size
    n_params = n_params or gguf_n_params(path)
    return {
        "path": str(path),
        "size_bytes": size,
        "n_params": n_params,
        "bits_per_weight": round(size * 8 / n_params, 3),
    }


def gguf_metadata(
    path: Path,
    keys: tuple[str, ...] = (
        "tokenizer.ggml.pre",
        "tokenizer.chat_template",
        "tokenizer.ggml.eos_token_id",
        "general.architecture",
    ),
) -> dict:
    """Selected scalar/string metadata of a GGUF file (absent keys are left out)."""
    from gguf import GGUFReader

    reader = GGUFReader(str(path))
    out = {}
    for key in keys:
        field = reader.get_field(key)
        if field is not None:
            out[key] = field.contents()
    return out


def gguf_token_text(path: Path, token_id: int) -> str:
    from gguf import GGUFReader

    tokens = GGUFReader(str(path)).get_field("tokenizer.ggml.tokens")
    if tokens is None:
        raise ValueError(f"{path}: the GGUF has no tokenizer.ggml.tokens")
    return tokens.contents(token_id)
