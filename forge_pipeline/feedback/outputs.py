"""What the DPO path hands on: the preference adapter (`preference_adapter`'s value, tables/preference_adapter.json)
and the A/B candidate it became (`preference_candidate`'s value). Both say whether anything happened (`trained`,
`published`) and why not; whatever else a run recorded travels along (`extra="allow"`)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict

from forge_pipeline.train.outputs import TrainedAdapter


class PreferenceAdapter(BaseModel):
    """A DPO run on the SFT adapter: when `trained`, a trained adapter's fields (TrainedAdapter's, plus
    kind "dpo", parent_mlflow_run_id and pairs_version); otherwise the reason and the number of pairs."""

    model_config = ConfigDict(frozen=True, extra="allow")

    trained: bool
    reason: str | None = None  # why it did not train
    pairs: int | None = None
    kind: str | None = None  # "dpo" when trained
    pairs_version: str | None = None
    parent_mlflow_run_id: str | None = None  # the SFT run it continued

    def adapter(self) -> TrainedAdapter:
        """The trained adapter (ValueError, naming what is missing, when the run recorded no adapter)."""
        if not self.trained:
            raise ValueError(f"preference_adapter did not train: {self.reason}")
        return TrainedAdapter.model_validate(self.model_dump())


class PreferenceCandidate(BaseModel):
    """The DPO adapter published as the manifest's A/B candidate (export.handoff.PublishedVersion's fields, the
    candidate, the gate and the losses), or why it was not (`published` false, `reason`)."""

    model_config = ConfigDict(frozen=True, extra="allow")

    published: bool
    reason: str | None = None
    version: str | None = None
    current: str | None = None
    already_published: bool = False
    candidate: dict[str, Any] | None = None
    gate: str | None = None
    tuned_loss: float | None = None
    base_loss: float | None = None
    manifest_path: str | None = None
    mlflow_run_id: str | None = None
