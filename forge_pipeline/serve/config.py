from pydantic import Field

from forge_pipeline.section import Section


class ServeSettings(Section):
    host: str = "127.0.0.1"
    port: int = Field(default=8077, ge=1, le=65535)
    admin_token: str | None = Field(
        default=None, description="Bearer token for the admin, files and fine-tuning routes."
    )
    admin_loopback_without_token: bool = Field(
        default=False,
        description="Let loopback clients use the admin routes without the token (a single-user "
        "machine). Off by default: a local reverse proxy makes every remote client look like loopback.",
    )
    log_served_chats: bool = False
    n_ctx: int = Field(default=2048, gt=0)
    max_request_bytes: int = Field(
        default=1_000_000, gt=0, description="Largest request body, except file uploads (max_file_bytes)."
    )
    max_file_bytes: int = Field(
        default=512 * 1024 * 1024,
        gt=0,
        description="Largest upload to POST /v1/files (OpenAI's limit, 512 MB); streamed to disk, never held in memory.",
    )
    parallel_requests: int = Field(
        default=2,
        ge=1,
        le=64,
        description="Chat/completion requests generated at once, each on its own llama.cpp context over the "
        "same mmap'd GGUF (costs a KV cache and compute buffers each; see benchmarks/README.md).",
    )
    n_threads: int | None = Field(
        default=None,
        ge=1,
        description="llama.cpp threads per context; default: the machine's cores shared out over "
        "parallel_requests (at least 1).",
    )
    retrain_threshold: int = Field(default=20, gt=0, description="New interactions that request a retrain.")
    dagster_url: str = "http://127.0.0.1:3000"
    dagster_location: str = Field(default="forge", description="Code location name (workspace.yaml's location_name).")
    fine_tuning_job: str = Field(
        default="forge_retrain_job", description="The Dagster job a POST /v1/fine_tuning/jobs launches."
    )
    dagster_timeout_s: float = Field(default=10.0, gt=0)
    embeddings: bool = Field(default=True, description="Load a second llama.cpp context for /v1/embeddings.")
    shutdown_timeout_s: float = Field(
        default=10.0,
        gt=0,
        description="On SIGTERM generations stop at their next token and their clients get an OpenAI error "
        "(503 server_shutting_down); this bounds how long the server then waits for connections to close.",
    )
    manifest_poll_s: float = Field(default=0.5, gt=0, description="How often the server checks the manifest.")
