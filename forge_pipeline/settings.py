"""One typed settings object for every path and hyperparameter.

Precedence (highest first): keyword arguments, environment variables (`FORGE_` prefix, `__` between
nested fields, e.g. `FORGE_TRAIN__LEARNING_RATE=1e-4`), the YAML or TOML file named by `forge --config` /
`load_settings(config_file=...)` or `FORGE_CONFIG` (or `forge.yaml` / `forge.toml` in the working directory),
then the defaults below.

Outputs go under the working directory's `.forge_data` unless a data root is set: never inside the installed
package. The input defaults (vault_dir, conversations_dir, eval_prompts) point at the sample data shipped inside
the package (`forge_pipeline/sample_data/`, read only), so `forge demo` runs wherever Forge is installed.
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from contextvars import ContextVar
from functools import cached_property
from pathlib import Path

from pydantic import Field, ValidationError, field_validator
from pydantic_core import ErrorDetails
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
    YamlConfigSettingsSource,
)
from pydantic_settings import (
    SettingsError as PydanticSettingsError,
)

from forge_pipeline.catalog.config import CatalogSettings
from forge_pipeline.curate.config import CurateSettings
from forge_pipeline.decoding import DecodingSettings
from forge_pipeline.embed.config import EmbedSettings
from forge_pipeline.errors import ForgeError
from forge_pipeline.export.config import EvalSettings, ExportSettings
from forge_pipeline.feedback.config import FeedbackSettings
from forge_pipeline.ingest.config import IngestSettings
from forge_pipeline.prepare.config import PrepareSettings
from forge_pipeline.runtime.config import RuntimeSettings
from forge_pipeline.serve.config import ServeSettings
from forge_pipeline.train.config import TrainSettings

SAMPLE_DATA = Path(__file__).resolve().parent / "sample_data"  # the demo's inputs, shipped in the package, read only
# The Dagster instance settings Forge runs with (queued runs, run monitoring, one training at a time), copied
# into a DAGSTER_HOME that has none.
DAGSTER_YAML = Path(__file__).resolve().parent / "dagster.yaml"
DATA_ROOT_NAME = ".forge_data"


def default_data_root() -> Path:
    """<working directory>/.forge_data, fixed when the settings load (a later chdir does not move it)."""
    return Path.cwd() / DATA_ROOT_NAME


class SettingsError(ForgeError, ValueError):
    """A settings value is wrong; the message names the field and the source file."""


# The settings file a caller named explicitly (load_settings(config_file=...)); it wins over FORGE_CONFIG
# without touching os.environ, which is shared by every thread of a Dagster run.
_CONFIG_FILE: ContextVar[str | None] = ContextVar("forge_config_file", default=None)


@contextmanager
def _named_config(config_file: str | Path | None):
    token = _CONFIG_FILE.set(str(config_file) if config_file else None)
    try:
        yield
    finally:
        _CONFIG_FILE.reset(token)


def _config_file() -> Path | None:
    explicit = _CONFIG_FILE.get()
    named = explicit or os.environ.get("FORGE_CONFIG")
    if named:
        path = Path(named)
        if not path.is_file():
            source = f"settings file {named}" if explicit else f"FORGE_CONFIG={named}"
            raise SettingsError(f"{source}: no such file")
        return path
    for candidate in (Path("forge.yaml"), Path("forge.yml"), Path("forge.toml")):
        if candidate.is_file():
            return candidate
    return None


class ForgeSettings(BaseSettings):
    """Everything Forge needs to know: where data lives and how each stage behaves."""

    model_config = SettingsConfigDict(
        env_prefix="FORGE_", env_nested_delimiter="__", extra="forbid", validate_default=True, allow_inf_nan=False
    )

    data_root: Path = Field(
        default_factory=default_data_root, description="All outputs go under here (default: ./.forge_data)."
    )
    vault_dir: Path = SAMPLE_DATA / "sample_vault"
    conversations_dir: Path = SAMPLE_DATA / "sample_conversations"
    interactions_dir: Path | None = Field(
        default=None, description="Where the server writes interactions; None means <data_root>/interactions."
    )
    eval_prompts: Path = SAMPLE_DATA / "eval_prompts.jsonl"
    mlflow_tracking_uri: str | None = Field(
        default=None, description="None: SQLite at <data_root>/mlflow/mlflow.db with local artifacts."
    )
    mlflow_experiment: str = "forge"
    dagster_ui_url: str = Field(
        default="http://127.0.0.1:3000",
        description="Where `dagster dev` serves the UI; MLflow runs link back to their Dagster run there.",
    )

    ingest: IngestSettings = IngestSettings()
    prepare: PrepareSettings = PrepareSettings()
    catalog: CatalogSettings = CatalogSettings()
    curate: CurateSettings = CurateSettings()
    train: TrainSettings = TrainSettings()
    eval: EvalSettings = EvalSettings()
    decoding: DecodingSettings = DecodingSettings()  # shared by serving and evaluation (forge_pipeline/decoding.py)
    export: ExportSettings = ExportSettings()
    serve: ServeSettings = ServeSettings()
    embed: EmbedSettings = EmbedSettings()  # embedding index and search (forge_pipeline/embed)
    feedback: FeedbackSettings = FeedbackSettings()
    runtime: RuntimeSettings = RuntimeSettings()  # local (default) or a Ray cluster (forge_pipeline/runtime)

    @field_validator("data_root", "vault_dir", "conversations_dir", "interactions_dir", "eval_prompts", mode="before")
    @classmethod
    def _path_not_empty(cls, value):
        # Path("") is the current directory: an empty FORGE_DATA_ROOT= would write outputs wherever forge runs.
        if isinstance(value, str) and not value.strip():
            raise ValueError("must not be empty (unset the variable to use the default)")
        return value

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        path = _config_file()
        if path is not None:
            if path.suffix == ".toml":
                sources.append(TomlConfigSettingsSource(settings_cls, toml_file=path))
            else:
                sources.append(YamlConfigSettingsSource(settings_cls, yaml_file=path))
        return tuple(sources)

    # Derived locations: one place decides the layout under data_root.
    @cached_property
    def paths(self) -> DataPaths:
        return DataPaths(self.data_root.resolve(), self.interactions_dir)

    @property
    def interaction_dirs(self) -> list[Path]:
        """Every folder the `conversations` asset reads interaction logs from (the sensor watches the same)."""
        return interaction_folders(self.conversations_dir, self.paths.interactions)

    @property
    def tracking_uri(self) -> str:
        if self.mlflow_tracking_uri:
            return self.mlflow_tracking_uri
        return f"sqlite:///{self.paths.mlflow / 'mlflow.db'}"


def interaction_folders(conversations_dir: Path, server_interactions: Path | None) -> list[Path]:
    """`<conversations_dir>/interactions/` and the server's interactions folder, once when they are one place."""
    dirs = [Path(conversations_dir) / "interactions"]
    if server_interactions is not None:
        dirs.append(Path(server_interactions))
    return [d for i, d in enumerate(dirs) if d.resolve() not in {seen.resolve() for seen in dirs[:i]}]


class DataPaths:
    """The layout of the data root. Nothing writes outside it (and never into the shipped sample data)."""

    def __init__(self, root: Path, interactions_dir: Path | None = None):
        self.root = root
        self.tables = root / "tables"  # Parquet tables between assets
        self.quarantine = root / "quarantine"  # dropped records with reasons, one Parquet per step
        self.cache = root / "cache"  # parse caches, embedding caches
        self.catalog = root / "catalog"  # versioned datasets + catalog.json
        self.models = root / "models"  # base models (the tiny demo model is built here)
        self.adapters = root / "adapters"  # trained LoRA adapters, one folder per run
        self.exports = root / "exports"  # GGUF files, Modelfiles
        self.manifest = root / "serve" / "adapter_manifest.json"
        self.curation_db = root / "curation.sqlite"
        self.imports = root / "imports"  # JSONL files `forge curate validate --add` accepted; ingest reads them
        self.mlflow = root / "mlflow"
        self.interactions = interactions_dir.resolve() if interactions_dir else root / "interactions"

    def ensure(self) -> DataPaths:
        for path in (
            self.tables,
            self.quarantine,
            self.cache,
            self.catalog,
            self.models,
            self.adapters,
            self.exports,
            self.manifest.parent,
            self.mlflow,
            self.interactions,
        ):
            path.mkdir(parents=True, exist_ok=True)
        return self


def load_settings(config_file: str | Path | None = None, **overrides) -> ForgeSettings:
    """Build settings, turning pydantic's error into one that names each wrong field and where it came from.

    `config_file` names the YAML/TOML file to read instead of FORGE_CONFIG / ./forge.yaml."""
    with _named_config(config_file):
        return _load(overrides)


def _unknown_nested_variables() -> list[str]:
    """FORGE_A__B variables whose section A is not a settings field (`FORGE_TRAINING__LORA_R`): pydantic-settings
    reads only the variables of known fields, so these would be ignored without a word. Unknown keys inside a
    known section (`FORGE_TRAIN__NUM_EPOCHS`) are refused by the sections themselves (extra="forbid")."""
    sections = set(ForgeSettings.model_fields)
    return sorted(
        name
        for name in os.environ
        if name.startswith("FORGE_")
        and "__" in name
        and name[len("FORGE_") :].split("__", 1)[0].lower() not in sections
    )


def _load(overrides: dict) -> ForgeSettings:
    unknown = _unknown_nested_variables()
    if unknown:
        raise SettingsError(
            f"unknown Forge settings variable(s) {', '.join(unknown)}: no such section; known "
            f"sections: {', '.join(sorted(ForgeSettings.model_fields))}"
        )
    try:
        settings = ForgeSettings(**overrides)
    except ValidationError as err:
        config = _config_file()  # forge.yaml found in the working directory counts too, not only FORGE_CONFIG
        source = str(config) if config else "environment/arguments"
        problems = "; ".join(_describe_error(e) for e in err.errors())
        raise SettingsError(f"invalid Forge settings from {source}: {problems}") from None
    except SettingsError:
        raise
    except PydanticSettingsError as err:
        # pydantic-settings' own error: a FORGE_* variable holding a whole section that is not valid JSON.
        raise SettingsError(f"invalid Forge settings: {err}; check the FORGE_* environment variables") from None
    except Exception as err:
        # A config file that is not YAML/TOML (or not a mapping at the top) used to surface as a bare parser
        # traceback (the TOML one without the file's name); say which file and what the parser saw.
        config = _config_file()
        if config is None:
            raise
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise SettingsError(
            f"{config}: cannot read the settings file ({type(err).__name__}: {first}); "
            f"it must be a YAML/TOML mapping of fields. Details: {err}"
        ) from None
    from forge_pipeline.prepare.pii_decisions import ReviewError, apply_review

    try:
        # `forge pii review` decisions join prepare.scrub's allow/deny lists: one path into the scrubber
        return apply_review(settings)
    except ReviewError as err:
        raise SettingsError(str(err)) from None


def _describe_error(error: ErrorDetails) -> str:
    """'field.path: message (got value)', plus the environment variable when that is where the value came from."""
    path = ".".join(str(p) for p in error["loc"])
    variable = "FORGE_" + "__".join(str(p) for p in error["loc"]).upper()
    where = f" [from {variable}]" if variable in os.environ else ""
    message = "unknown setting (misspelt?)" if error["type"] == "extra_forbidden" else error["msg"]
    return f"{path}: {message} (got {error.get('input')!r}){where}"
