"""Run one of llama.cpp's converter scripts, declaring an unrecognized BPE pre-tokenizer as `gpt-2`.

Usage: python gpt2_pre_tokenizer_fallback.py <converter_dir> <script.py> [script args...]

A tokenizer trained locally (the demo model's) hashes to a value the converter does not know, and the
converter refuses it. Our tokenizers use the GPT-2 byte-level pre-tokenizer, so `gpt-2` is the right
declaration; the patch only answers when the converter's own lookup fails, so a recognized tokenizer keeps
the converter's answer. The converter code itself is run unchanged from its folder.
"""

from __future__ import annotations

import runpy
import sys
from pathlib import Path


def main() -> None:
    converter_dir, script, *args = sys.argv[1:]
    sys.path[:0] = [str(Path(converter_dir) / "gguf-py"), converter_dir]
    from conversion import base  # the converter's package, found through the path set above

    original = base.TextModel.get_vocab_base_pre

    def get_vocab_base_pre(self, tokenizer) -> str:
        try:
            return original(self, tokenizer)
        except NotImplementedError as err:
            if "pre-tokenizer was not recognized" not in str(err):
                raise
            base.logger.warning("forge: unrecognized BPE pre-tokenizer hash, declaring it 'gpt-2'")
            return "gpt-2"

    base.TextModel.get_vocab_base_pre = get_vocab_base_pre
    sys.argv = [script, *args]
    runpy.run_path(script, run_name="__main__")


if __name__ == "__main__":
    main()
