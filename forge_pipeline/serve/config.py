from pydantic import BaseModel, Field


class ServeSettings(BaseModel):
    host: str = "127.0.0.1"
    port: int = Field(default=8077, ge=1, le=65535)
    admin_token: str | None = Field(default=None, description="Needed for admin/fine-tune routes from non-loopback.")
    log_served_chats: bool = False
    n_ctx: int = Field(default=2048, gt=0)
    max_request_bytes: int = Field(default=1_000_000, gt=0)
    retrain_threshold: int = Field(default=20, gt=0, description="New interactions that request a retrain.")
    dagster_url: str = "http://127.0.0.1:3000"
