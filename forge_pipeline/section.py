"""The base of every settings section (`train`, `ingest`, ...), kept apart so stage configs need not import
forge_pipeline.settings (which imports them)."""

from pydantic import BaseModel, ConfigDict


class Section(BaseModel):
    """A misspelt key (`learnin_rate`) or a non-finite number (`inf`) is an error naming the field, not a value
    silently ignored or a crash deep inside a later stage (pydantic's BaseModel ignores extras by default)."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)
