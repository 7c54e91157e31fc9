"""The one Definitions object of the Forge code location: everything under forge_pipeline/defs/, loaded by
Dagster's folder loader, each asset in the group its folder names, plus the shared resources."""

import warnings
from pathlib import Path

import dagster as dg

from forge_pipeline.defs.resources import shared_resources

PACKAGE = Path(__file__).parent

# Runs launched from the UI, a sensor or a fine-tuning job run each step in its own process. Spawned, every
# step re-imports Dagster, Forge and the libraries its asset imports (seconds each, ~30 steps in a retrain);
# Dagster's forkserver start method forks them from one process that has imported these once. The forkserver
# only imports (torch starts no thread pool until it computes), so forking it is safe. `forge demo` runs in
# process.
PRELOADED = (
    "forge_pipeline.definitions",
    "polars",
    "torch",
    "transformers",
    "sentence_transformers",
    "presidio_analyzer",
)
STEP_EXECUTOR = dg.multiprocess_executor.configured(
    {"start_method": {"forkserver": {"preload_modules": list(PRELOADED)}}}
)


def _folder(spec: dg.AssetSpec) -> str:
    """The defs/ folder of the file that defines the asset, read from its code reference."""
    references = spec.metadata["dagster/code_references"].code_references
    return Path(references[0].file_path).parent.name


def _assets_defs(defs: dg.Definitions) -> list[dg.AssetsDefinition]:
    return [asset for asset in defs.assets or [] if isinstance(asset, dg.AssetsDefinition)]


def load_defs_folder() -> dg.Definitions:
    """Every asset, check, job, sensor, schedule and stage resource under forge_pipeline/defs/, found by Dagster's
    folder loader. `defs/<group>/` is the asset group: assets name no group, each is given the folder of the file
    that defines it, so a folder and a group cannot disagree.

    The loader collects every module-level definition of every module, imported ones too: a check in another
    module than its asset names the asset by key, or the asset would be loaded twice ("Duplicate asset key")."""
    # Code references and map_asset_specs are public but labelled beta/preview (dagster is pinned): silenced
    # here so that every load does not print the labels.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", dg.BetaWarning)
        warnings.simplefilter("ignore", dg.PreviewWarning)
        loaded = dg.load_from_defs_folder(path_within_project=PACKAGE)
        located = dg.with_source_code_references(_assets_defs(loaded))
        folders = {
            spec.key: _folder(spec)
            for asset in located
            if isinstance(asset, dg.AssetsDefinition)
            for spec in asset.specs
        }
        return loaded.map_asset_specs(func=lambda spec: spec.replace_attributes(group_name=folders[spec.key]))


def group_definitions(*groups: str) -> dg.Definitions:
    """The assets of these groups and the checks on them, without resources: a stage materialized on its own."""
    loaded = load_defs_folder()
    assets = [asset for asset in _assets_defs(loaded) if {spec.group_name for spec in asset.specs} <= set(groups)]
    keys = {key for asset in assets for key in asset.keys}
    checks = [check for check in loaded.asset_checks or [] if {c.asset_key for c in check.check_keys} <= keys]
    return dg.Definitions(assets=assets, asset_checks=checks)


def build_definitions(data_root: str | None = None, config_file: str | None = None) -> dg.Definitions:
    """All of Forge; `data_root` overrides the settings' data root (tests use a temporary one), `config_file`
    names the settings file (`forge --config`; None: FORGE_CONFIG or ./forge.yaml)."""
    return dg.Definitions.merge(
        load_defs_folder(),
        dg.Definitions(resources=shared_resources(data_root, config_file), executor=STEP_EXECUTOR),
    )


defs = build_definitions()
