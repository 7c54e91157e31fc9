from pydantic import Field

from forge_pipeline.section import Section


class CatalogSettings(Section):
    """Versioned dataset catalog."""

    validation_ratio: float = Field(default=0.1, ge=0.0, lt=1.0)
    split_salt: str = Field(default="forge", description="Changing it reshuffles which examples go to validation.")
    min_validation_examples: int = Field(
        default=8,
        ge=0,
        description="Held-out examples topped up to this many (never past a third of the data): enough for the "
        "evaluation's loss to mean something on small datasets.",
    )
