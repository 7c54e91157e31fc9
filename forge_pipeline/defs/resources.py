"""Resources shared by every stage: the settings and the table IO manager."""

from __future__ import annotations

import json
from pathlib import Path

import dagster as dg
import polars as pl
from pydantic import BaseModel, Field, PrivateAttr

from forge_pipeline.settings import ForgeSettings, load_settings


class ForgeSettingsResource(dg.ConfigurableResource):
    """Forge's typed settings, loaded once per run (env vars and FORGE_CONFIG apply; fields here win).

    Dagster builds the resource afresh for each run (and each sensor tick), so caching on the instance means
    one read per run: every asset of the run sees the same settings, and nothing in os.environ changes."""

    data_root: str | None = None
    config_file: str | None = Field(default=None, description="YAML/TOML settings file; None: FORGE_CONFIG.")

    _settings: ForgeSettings | None = PrivateAttr(default=None)

    def get(self) -> ForgeSettings:
        if self._settings is None:
            overrides = {"data_root": Path(self.data_root)} if self.data_root else {}
            settings = load_settings(config_file=self.config_file, **overrides)
            settings.paths.ensure()
            self._settings = settings
        return self._settings


class ForgeTablesIOManager(dg.ConfigurableIOManager):
    """Stores asset outputs under <data_root>/tables: Polars frames as Parquet, dicts and pydantic models (the
    typed values stages hand on) as JSON.

    Parquet keeps tables readable by any tool (polars, duckdb, pandas) outside Dagster; JSON keeps the typed
    values readable too. An input annotated with a pydantic model is validated into it as it is read (a value
    stored before the model existed loads the same way); any other input gets the JSON as it is.
    """

    forge: ForgeSettingsResource  # a plain nested resource: ResourceDependency[...] fails validation under `from __future__ import annotations`

    def _base(self, context) -> Path:
        key = "__".join(context.asset_key.path)
        return self.forge.get().paths.tables / key

    def handle_output(self, context: dg.OutputContext, obj) -> None:
        from forge_pipeline.atomic import atomic_path, write_json_atomic

        base = self._base(context)
        if obj is None:
            return
        if isinstance(obj, pl.DataFrame):
            with atomic_path(base.with_suffix(".parquet")) as tmp:
                obj.write_parquet(tmp)
            context.add_output_metadata({"table_path": dg.MetadataValue.path(str(base.with_suffix(".parquet")))})
        elif isinstance(obj, BaseModel):
            write_json_atomic(base.with_suffix(".json"), obj.model_dump())  # paths as text (default=str), NaN kept
        else:
            write_json_atomic(base.with_suffix(".json"), obj)

    def load_input(self, context: dg.InputContext):
        base = self._base(context.upstream_output)
        if base.with_suffix(".parquet").exists():
            return pl.read_parquet(base.with_suffix(".parquet"))
        if base.with_suffix(".json").exists():
            value = json.loads(base.with_suffix(".json").read_text())
            wanted = context.dagster_type.typing_type
            if isinstance(wanted, type) and issubclass(wanted, BaseModel):
                return wanted.model_validate(value)
            return value
        raise FileNotFoundError(
            f"{context.asset_key.to_user_string()} has no stored output under {base.parent}; materialize it first"
        )


def shared_resources(data_root: str | None = None, config_file: str | None = None) -> dict:
    forge = ForgeSettingsResource(
        data_root=data_root or dg.EnvVar("FORGE_DATA_ROOT").get_value() or None, config_file=config_file
    )
    return {"forge": forge, "io_manager": ForgeTablesIOManager(forge=forge)}
