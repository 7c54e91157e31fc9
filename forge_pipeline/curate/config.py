from typing import Literal

from pydantic import Field

from forge_pipeline.section import Section


class CurateSettings(Section):
    include_unreviewed: bool = Field(
        default=True, description="Unreviewed examples go into the dataset (demo default)."
    )
    reviewer: str | None = Field(default=None, description="Name stored with each decision; None uses $USER.")
    estimate_hardware: Literal["auto", "cpu", "gpu"] = Field(
        default="auto",
        description="Hardware the training estimate assumes; auto: gpu when an NVIDIA driver is present.",
    )
    histogram_bins: int = Field(default=30, ge=2)
    sample_size: int = Field(default=5, ge=0, description="Examples shown by `forge dataset show`.")
