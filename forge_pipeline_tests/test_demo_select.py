"""`forge demo --select`: the multi-asset forms people type (keys separated by spaces or commas, each with
Dagster's +/* operators) and Dagster's own selection syntax, resolved on Forge's real asset graph; an unknown key
is refused by name with the closest existing keys."""

import re

import pytest
from typer.testing import CliRunner

from forge_pipeline.cli import app
from forge_pipeline.definitions import defs
from forge_pipeline.selection import SelectionError, resolve_selection

GRAPH = defs.resolve_asset_graph()


def chosen(select: str) -> set[str]:
    return {key.to_user_string() for key in resolve_selection(select, GRAPH)}


def upstream_of(name: str) -> set[str]:
    import dagster as dg

    return {key.to_user_string() for key in dg.AssetSelection.assets(name).upstream().resolve(GRAPH)}


@pytest.mark.parametrize(
    "select",
    [
        "base_model lora_adapter",
        "base_model,lora_adapter",
        "base_model, lora_adapter",
        "key:base_model or key:lora_adapter",
    ],
)
def test_two_assets_in_every_form(select):
    assert chosen(select) == {"base_model", "lora_adapter"}


def test_graph_operators_per_key_and_dagster_syntax():
    assert chosen("*lora_adapter adapter_evaluation") == upstream_of("lora_adapter") | {"adapter_evaluation"}
    assert chosen("+lora_adapter") == {"lora_adapter", "base_model", "dataset_version"}
    assert chosen("curated_examples+") == {"curated_examples", "dataset_version"}
    assert chosen("*dataset_version") == upstream_of("dataset_version")
    # Dagster's two syntaxes differ: in the key: syntax a bare + means every layer, 1+ one layer.
    assert chosen("1+key:lora_adapter") == chosen("+lora_adapter")
    assert chosen("+key:lora_adapter") == chosen("*lora_adapter")
    assert chosen("*") == {key.to_user_string() for key in GRAPH.get_all_asset_keys()}


@pytest.mark.parametrize("select", ["lora_adaptr", "base_model lora_adaptr", "key:base_model or key:lora_adaptr"])
def test_an_unknown_key_is_named_with_close_matches(select):
    with pytest.raises(SelectionError, match=r"no asset named 'lora_adaptr' \(did you mean lora_adapter"):
        resolve_selection(select, GRAPH)


def test_the_command_refuses_an_unknown_key_before_running_anything(tmp_path, monkeypatch):
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "home"))
    result = CliRunner().invoke(
        app, ["--data-root", str(tmp_path / "data"), "demo", "--select", "base_modle lora_adapter"]
    )
    assert result.exit_code == 2  # a usage error, printed by click in its error box
    shown = " ".join(re.sub(r"[│╭╮╰╯─]", " ", result.output).split())
    assert (
        "Invalid value for '--select': 'base_modle lora_adapter': no asset named 'base_modle' (did you mean base_model"
        in shown
    )
    assert not (tmp_path / "data" / "tables").exists() or not any((tmp_path / "data" / "tables").iterdir())
