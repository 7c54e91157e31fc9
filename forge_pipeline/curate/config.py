from pydantic import BaseModel, Field


class CurateSettings(BaseModel):
    include_unreviewed: bool = Field(default=True, description="Unreviewed examples go into the dataset (demo default).")
