"""The feedback loop: preference pairs from ratings, corrections and choices; DPO on top of the SFT adapter;
per-version comparison of A/B traffic (the routing itself is the server's: serve/routing.py). Dagster-free."""
