"""Training subprocesses end with the process that launched them.

The Pipes client starts training as a child process. When the launcher dies without stopping it (`forge demo`
killed, the Dagster run worker gone), the child is re-parented and would keep both cores busy for minutes,
writing to a run nobody reads. A daemon thread notices that its parent changed and terminates the child;
checkpoints and the adapter are written to staging folders and renamed, so stopping at any moment leaves
nothing half-written.
"""

from __future__ import annotations

import os
import signal
import threading
import time

POLL_S = 2.0
GRACE_S = 10.0  # for SIGTERM's handlers before the process ends regardless


def exit_with_parent(poll_s: float = POLL_S) -> threading.Thread:
    """Start watching the parent process; SIGTERM this process once it is gone."""
    parent = os.getppid()

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(poll_s)
        os.kill(os.getpid(), signal.SIGTERM)
        # SIGTERM does nothing where it is ignored (a disposition inherited from whatever started the launcher
        # survives exec) or handled without exiting: then end after a grace period all the same
        time.sleep(GRACE_S)
        os._exit(128 + signal.SIGTERM)

    thread = threading.Thread(target=watch, name="forge-exit-with-parent", daemon=True)
    thread.start()
    return thread
