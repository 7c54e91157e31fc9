from pydantic import Field

from forge_pipeline.section import Section


class FeedbackSettings(Section):
    """Preference pairs, DPO and A/B serving."""

    min_pairs: int = Field(
        default=16, gt=0, description="preference_adapter trains only with at least this many pairs."
    )
    beta: float = Field(default=0.1, gt=0.0, description="DPO beta: how far the policy may move from the SFT adapter.")
    learning_rate: float = Field(default=5e-5, gt=0.0)
    num_train_epochs: float = Field(default=1.0, gt=0.0)
    max_steps: int = Field(default=-1, description="-1: train for num_train_epochs; > 0 stops after that many steps.")
    per_device_train_batch_size: int = Field(default=4, gt=0)
    gradient_accumulation_steps: int = Field(default=1, gt=0)
    max_length: int = Field(default=1024, gt=16)
    seed: int = 42
    candidate_traffic_share: float = Field(
        default=0.2,
        gt=0.0,
        le=1.0,
        description="Share of chat requests a newly published preference version gets as the A/B candidate.",
    )
    router_seed: int | None = Field(default=None, description="Seed of the A/B router (None: random per process).")
