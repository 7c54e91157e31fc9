"""A/B routing: which chat requests go to the candidate version (share from the manifest's `candidate`)."""

from __future__ import annotations

import random
import threading


class TrafficRouter:
    """Independent seeded draws per request: over n requests the candidate's count is Binomial(n, share),
    so the observed share is within a few sqrt(share*(1-share)/n) of the target. A seed makes a run
    reproducible (tests, benchmarks); None seeds from the OS."""

    def __init__(self, seed: int | None = None):
        self._random = random.Random(seed)
        self._lock = threading.Lock()  # request threads draw concurrently

    def to_candidate(self, share: float) -> bool:
        if share <= 0.0:
            return False
        if share >= 1.0:
            return True
        with self._lock:
            return self._random.random() < share
