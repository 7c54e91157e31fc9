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
def library_output_to(log_path: Path, verbose: bool = False, stderr_only: bool = False) -> Iterator[TextIO]:
    """Send everything written to stdout/stderr while inside to `log_path`; yield a stream on the real terminal.

    With `verbose`, nothing is redirected: library output stays on the terminal as it comes. With `stderr_only`,
    stdout stays the terminal (a server whose own log lines go there) and only stderr goes to the file.
    """
    if verbose:
        yield sys.stdout
        return
    log_path.parent.mkdir(parents=True, exist_ok=True)
    sys.stdout.flush()
    sys.stderr.flush()
    redirected = (2,) if stderr_only else (1, 2)
    saved = {fd: os.dup(fd) for fd in (1, 2)}
    try:
        stdout_is_fd1 = sys.stdout.fileno() == 1
    except (AttributeError, OSError, ValueError):  # replaced by a capturing stream (a test runner, a notebook)
        stdout_is_fd1 = False
    # Line-buffered, so Forge's progress lines reach the terminal as they are printed. Where Python's stdout is
    # not descriptor 1 (captured), Forge's own output goes where the caller captures it.
    terminal = (
        os.fdopen(os.dup(saved[1]), "w", buffering=1, encoding=sys.stdout.encoding or "utf-8")
        if stdout_is_fd1
        else sys.stdout
    )
    with open(log_path, "ab", buffering=0) as log:
        for fd in redirected:
            os.dup2(log.fileno(), fd)
        try:
            yield terminal
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            for fd, original in saved.items():
                os.dup2(original, fd)
                os.close(original)
            if stdout_is_fd1:
                terminal.close()
