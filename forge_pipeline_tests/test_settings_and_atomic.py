"""Settings precedence and errors; atomic writes leave nothing partial behind."""

import json
import os
from pathlib import Path

import pytest

from forge_pipeline.atomic import atomic_directory, atomic_path, write_json_atomic
from forge_pipeline.settings import SettingsError, load_settings


def test_defaults_put_every_output_under_the_data_root(tmp_path):
    settings = load_settings(data_root=tmp_path)
    paths = settings.paths.ensure()
    for folder in (paths.tables, paths.quarantine, paths.catalog, paths.exports, paths.interactions):
        assert folder.is_dir() and folder.is_relative_to(tmp_path)
    assert settings.tracking_uri == f"sqlite:///{tmp_path / 'mlflow' / 'mlflow.db'}"
    assert settings.train.lora_r == 16 and settings.train.learning_rate == 2e-4
    assert settings.train.target_modules == ["q_proj", "k_proj", "v_proj", "o_proj"]


def test_environment_overrides_nested_fields(tmp_path, monkeypatch):
    monkeypatch.setenv("FORGE_TRAIN__LORA_R", "8")
    monkeypatch.setenv("FORGE_PREPARE__DEDUP__COSINE_THRESHOLD", "0.8")
    settings = load_settings(data_root=tmp_path)
    assert settings.train.lora_r == 8
    assert settings.prepare.dedup.cosine_threshold == 0.8


@pytest.mark.parametrize(
    "suffix, text",
    [
        (".yaml", "train:\n  num_train_epochs: 3\nexport:\n  quant_type: Q8_0\n"),
        (".toml", "[train]\nnum_train_epochs = 3\n[export]\nquant_type = 'Q8_0'\n"),
    ],
)
def test_config_file_overrides_defaults_and_env_wins_over_file(tmp_path, monkeypatch, suffix, text):
    config = tmp_path / f"forge{suffix}"
    config.write_text(text)
    monkeypatch.setenv("FORGE_CONFIG", str(config))
    settings = load_settings(data_root=tmp_path)
    assert settings.train.num_train_epochs == 3 and settings.export.quant_type == "Q8_0"  # default: 1
    monkeypatch.setenv("FORGE_TRAIN__NUM_TRAIN_EPOCHS", "2")
    assert load_settings(data_root=tmp_path).train.num_train_epochs == 2


def test_wrong_values_name_the_field_and_the_file(tmp_path, monkeypatch):
    config = tmp_path / "forge.yaml"
    config.write_text("train:\n  learning_rate: -1\ncatalog:\n  validation_ratio: 2\n")
    monkeypatch.setenv("FORGE_CONFIG", str(config))
    with pytest.raises(SettingsError) as err:
        load_settings(data_root=tmp_path)
    message = str(err.value)
    assert "train.learning_rate" in message and "catalog.validation_ratio" in message and str(config) in message


def test_unknown_field_and_missing_config_file_are_errors(tmp_path, monkeypatch):
    with pytest.raises(SettingsError, match="bogus"):
        load_settings(data_root=tmp_path, bogus=1)
    monkeypatch.setenv("FORGE_CONFIG", str(tmp_path / "nope.yaml"))
    with pytest.raises(SettingsError, match="no such file"):
        load_settings()


def test_atomic_path_keeps_old_content_when_writer_crashes(tmp_path):
    target = tmp_path / "model.gguf"
    target.write_bytes(b"old")
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_bytes(b"half of the new")
            raise RuntimeError("killed mid-write")
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["model.gguf"]


def test_atomic_directory_replaces_whole_folder_or_nothing(tmp_path):
    target = tmp_path / "adapter"
    with atomic_directory(target) as staging:
        (staging / "a.bin").write_bytes(b"1")
    with pytest.raises(OSError):
        with atomic_directory(target) as staging:
            (staging / "b.bin").write_bytes(b"2")
            raise OSError("disk full")
    assert sorted(p.name for p in target.iterdir()) == ["a.bin"]
    with atomic_directory(target) as staging:
        (staging / "c.bin").write_bytes(b"3")
    assert sorted(p.name for p in target.iterdir()) == ["c.bin"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["adapter"]


def test_write_json_atomic_round_trips(tmp_path):
    target = write_json_atomic(tmp_path / "x" / "m.json", {"current": "v0001", "path": Path("a")})
    assert json.loads(target.read_text()) == {"current": "v0001", "path": "a"}
    assert not [p for p in target.parent.iterdir() if p.name.endswith(".partial")]
    assert os.stat(target).st_size > 0


@pytest.mark.parametrize(
    "variable, value, named",
    [
        ("FORGE_TRAIN__NUM_EPOCHS", "3", "train.num_epochs"),  # misspelt key inside a known section
        ("FORGE_TRAINING__LORA_R", "8", "FORGE_TRAINING__LORA_R"),  # misspelt section
        ("FORGE_TRAIN__NUM_TRAIN_EPOCHS", "inf", "train.num_train_epochs"),
        ("FORGE_PREPARE__DEDUP__COSINE_THRESHOLD", "nan", "prepare.dedup.cosine_threshold"),
        ("FORGE_DATA_ROOT", "", "data_root"),  # would make the working directory the data root
    ],
)
def test_unknown_non_finite_and_empty_variables_are_refused_naming_the_field(monkeypatch, variable, value, named):
    monkeypatch.delenv("FORGE_CONFIG", raising=False)
    monkeypatch.setenv(variable, value)
    with pytest.raises(SettingsError, match=named.replace(".", r"\.")):
        load_settings()


def test_unknown_key_in_a_config_file_section_is_refused(tmp_path, monkeypatch):
    config = tmp_path / "forge.yaml"
    config.write_text("train:\n  learnin_rate: 1\n")
    monkeypatch.setenv("FORGE_CONFIG", str(config))
    with pytest.raises(SettingsError, match=r"train\.learnin_rate: unknown setting") as err:
        load_settings(data_root=tmp_path)
    assert str(config) in str(err.value)


def test_a_named_config_file_is_read_without_touching_the_environment(tmp_path, monkeypatch):
    monkeypatch.delenv("FORGE_CONFIG", raising=False)
    config = tmp_path / "forge.yaml"
    config.write_text("train:\n  lora_r: 4\n")
    assert load_settings(config_file=config, data_root=tmp_path).train.lora_r == 4
    assert "FORGE_CONFIG" not in os.environ
    assert load_settings(data_root=tmp_path).train.lora_r == 16
