"""The feedback loop: preference pairs from ratings, corrections and choices; DPO on top of the SFT adapter;
A/B routing between the current and a candidate version; per-version comparison. Dagster-free."""
