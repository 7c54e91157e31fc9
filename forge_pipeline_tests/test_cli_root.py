"""The `forge` command's root: the shared options before the command, one line for a ForgeError (a trace for
anything else), and outputs under the working directory's .forge_data unless a data root is set."""

import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from forge_pipeline.cli import app
from forge_pipeline.errors import ForgeError
from forge_pipeline.settings import load_settings

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture
def no_settings_from_the_environment(monkeypatch):
    for name in ("FORGE_DATA_ROOT", "FORGE_CONFIG"):
        monkeypatch.delenv(name, raising=False)


def _forge(*args: str, cwd: Path, script: str = "") -> subprocess.CompletedProcess:
    """`forge ARGS` as a person runs it (cli.main, stderr apart), after `script` (a patch) when given."""
    code = f"import sys\n{script}\nfrom forge_pipeline.cli import main\nsys.argv = ['forge', *{list(args)!r}]\nmain()"
    env = {"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin", "HOME": str(cwd)}
    return subprocess.run([sys.executable, "-c", code], cwd=cwd, env=env, capture_output=True, text=True, timeout=120)


def test_the_data_root_option_before_the_command_reaches_commands_and_nested_groups(tmp_path):
    runner = CliRunner()
    models = runner.invoke(app, ["--data-root", str(tmp_path / "a"), "models"])
    assert models.exit_code == 0 and f"no versions in {tmp_path / 'a' / 'serve' / 'adapter_manifest.json'}" in (
        models.output
    )
    datasets = runner.invoke(app, ["--data-root", str(tmp_path / "b"), "datasets"])
    assert datasets.exit_code == 0 and str(tmp_path / "b" / "catalog") in datasets.output
    shown = runner.invoke(app, ["--data-root", str(tmp_path / "c"), "dataset", "show", "latest"])
    assert shown.exit_code == 1 and str(tmp_path / "c" / "catalog") in shown.output


def test_the_config_option_names_the_settings_file_and_data_root_wins_over_it(tmp_path):
    config = tmp_path / "mine.yaml"
    config.write_text(f"data_root: {tmp_path / 'from_config'}\n")
    runner = CliRunner()
    from_file = runner.invoke(app, ["--config", str(config), "models"])
    assert from_file.exit_code == 0 and str(tmp_path / "from_config" / "serve") in from_file.output
    both = runner.invoke(app, ["--config", str(config), "--data-root", str(tmp_path / "given"), "models"])
    assert both.exit_code == 0 and str(tmp_path / "given" / "serve") in both.output
    missing = runner.invoke(app, ["--config", str(tmp_path / "nope.yaml"), "models"])
    assert missing.exit_code == 1 and f"settings file {tmp_path / 'nope.yaml'}: no such file" in missing.output


def test_the_demos_run_reads_the_config_option_too(tmp_path, monkeypatch):
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster_home"))
    config = tmp_path / "mine.yaml"
    config.write_text(f"vault_dir: {tmp_path / 'vault_from_config'}\n")
    result = CliRunner().invoke(
        app,
        ["--config", str(config), "--data-root", str(tmp_path / "data"), "demo", "--select", "vault_notes"],
        env={"COLUMNS": "300"},
    )
    assert result.exit_code == 1  # the step failed in the Dagster run, on the vault the settings file names
    assert f"vault folder {tmp_path / 'vault_from_config'} does not exist" in result.output


def test_the_shared_options_after_the_command_are_a_usage_error_that_says_where_they_go(tmp_path):
    result = CliRunner().invoke(app, ["dataset", "show", "latest", "--data-root", str(tmp_path)])
    assert result.exit_code == 2
    assert "--data-root goes before the command: forge --data-root VALUE dataset show" in result.output


def test_a_forge_error_is_one_line_naming_the_command_with_exit_status_1(tmp_path):
    done = _forge("--data-root", str(tmp_path), "rollback", "v0099", cwd=tmp_path)
    assert done.returncode == 1
    assert done.stderr.splitlines() == [
        f"forge rollback: {tmp_path / 'serve' / 'adapter_manifest.json'}: version 'v0099' is not in the manifest"
    ]
    nested = CliRunner().invoke(app, ["--data-root", str(tmp_path), "pii", "review", "--list"])
    assert nested.exit_code == 1 and nested.output.startswith("forge pii review: ")
    assert "Traceback" not in nested.output


def test_any_other_exception_is_a_bug_and_shows_its_trace(tmp_path):
    patch = (
        "import forge_pipeline.export.manifest as m\n"
        "def broken(path):\n    raise KeyError('a bug in Forge')\n"
        "m.read_manifest = broken"
    )
    done = _forge("--data-root", str(tmp_path), "models", cwd=tmp_path, script=patch)
    assert done.returncode == 1
    assert "Traceback" in done.stderr and "a bug in Forge" in done.stderr and "broken" in done.stderr


def test_forge_errors_share_one_root_and_keep_their_builtin_bases():
    from forge_pipeline.catalog.versions import CatalogError
    from forge_pipeline.curate.inspect import DatasetNotFound
    from forge_pipeline.embed.store import IndexNotFoundError
    from forge_pipeline.export.llama_cpp import ConversionError
    from forge_pipeline.export.manifest import ManifestError
    from forge_pipeline.selection import SelectionError
    from forge_pipeline.settings import SettingsError

    for error, builtin in (
        (CatalogError, ValueError),
        (ManifestError, ValueError),
        (SelectionError, ValueError),
        (SettingsError, ValueError),
        (DatasetNotFound, FileNotFoundError),
        (IndexNotFoundError, FileNotFoundError),
        (ConversionError, RuntimeError),
    ):
        assert issubclass(error, ForgeError) and issubclass(error, builtin), error


def test_the_default_data_root_is_the_working_directorys_forge_data(
    tmp_path, monkeypatch, no_settings_from_the_environment
):
    monkeypatch.chdir(tmp_path)
    settings = load_settings()
    assert settings.data_root == tmp_path / ".forge_data" and settings.paths.root == tmp_path / ".forge_data"
    monkeypatch.chdir(REPO)  # fixed when the settings load: a later chdir does not move it
    assert settings.paths.root == tmp_path / ".forge_data"
    assert load_settings(data_root=tmp_path / "given").data_root == tmp_path / "given"
    monkeypatch.setenv("FORGE_DATA_ROOT", str(tmp_path / "from_env"))
    assert load_settings().data_root == tmp_path / "from_env"


def test_forge_run_elsewhere_writes_under_that_folder_not_the_package(tmp_path):
    done = _forge("rollback", cwd=tmp_path)  # nothing to roll back: a ForgeError naming the manifest's path
    assert done.returncode == 1
    assert f"{tmp_path / '.forge_data' / 'serve' / 'adapter_manifest.json'}" in done.stderr


def test_the_converter_is_looked_for_in_the_checkout_then_the_users_cache(tmp_path, monkeypatch):
    from forge_pipeline.export import llama_cpp

    installed = tmp_path / "site-packages" / "forge_pipeline" / "export" / "llama_cpp.py"
    monkeypatch.setattr(llama_cpp, "__file__", str(installed))  # as an installed Forge sees itself
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert llama_cpp.default_converter_dir() == tmp_path / "xdg" / "forge" / "llama_cpp_convert"
    checkout = tmp_path / "checkout"
    (checkout / ".cache" / "llama_cpp_convert").mkdir(parents=True)
    (checkout / "pyproject.toml").write_text("")
    monkeypatch.setattr(llama_cpp, "__file__", str(checkout / "forge_pipeline" / "export" / "llama_cpp.py"))
    assert llama_cpp.default_converter_dir() == checkout / ".cache" / "llama_cpp_convert"
