"""Where library output goes during a long command: a log file under the data root, not the terminal.

Libraries talk on stdout/stderr in every way there is: Python warnings, `logging`, tqdm bars, C code writing to
file descriptor 2 (llama.cpp's quantizer logs a line per tensor), and child processes that inherit those
descriptors (the training subprocess). Redirecting the two descriptors themselves is the one place that catches
all of them; Forge's own progress and results are written to a duplicate of the terminal taken beforehand.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TextIO


def run_log_path(data_root: Path, run_name: str) -> Path:
    """`<data root>/logs/<run name>.log`: one file per run, named in the command's last lines."""
    return Path(data_root) / "logs" / f"{run_name}.log"


@contextmanager
def library_output_to(log_path: Path, verbose: bool = False) -> Iterator[TextIO]:
    """Send everything written to stdout/stderr while inside to `log_path`; yield a stream on the real terminal.

    With `verbose`, nothing is redirected: library output stays on the terminal as it comes.
    """
    if verbose:
        yield sys.stdout
        return
    log_path.parent.mkdir(parents=True, exist_ok=True)
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    # Line-buffered, so Forge's progress lines reach the terminal as they are printed.
    terminal = os.fdopen(os.dup(saved[0]), "w", buffering=1, encoding=sys.stdout.encoding or "utf-8")
    with open(log_path, "ab", buffering=0) as log:
        os.dup2(log.fileno(), 1)
        os.dup2(log.fileno(), 2)
        try:
            yield terminal
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            os.close(saved[0])
            os.close(saved[1])
            terminal.close()
