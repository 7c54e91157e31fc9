"""Teaching a published version (train.continue_from): which rows a taught run trains on, which versions can be
continued and what is said when one cannot, on real manifest, catalog and dataset files. The taught training
itself (the parent adapter as the start) is tested with the real trainer in test_train_sft.py."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from forge_pipeline.catalog.handoff import DatasetVersion
from forge_pipeline.settings import load_settings
from forge_pipeline.train.plan import teaching_parent
from forge_pipeline.train.teach import TeachError, parent_of, teaching_rows


def _row(question: str, answer: str) -> dict:
    return {"messages": [{"role": "user", "content": question}, {"role": "assistant", "content": answer}]}


OLD = [_row(f"old question {i}?", f"old answer {i}.") for i in range(10)]
NEW = [_row("How often do I feed the starter?", "Twice a day, equal flour and water.")]


def test_a_taught_run_trains_each_new_row_repeats_times_beside_a_replay_of_old_rows():
    taught = teaching_rows(OLD + NEW, OLD, replay=4, repeats=3, seed=7)
    assert (taught["new"], taught["replayed"]) == (1, 4)
    assert taught["rows"].count(NEW[0]) == 3
    replayed = [row for row in taught["rows"] if row != NEW[0]]
    assert len(replayed) == 4 and all(row in OLD for row in replayed)
    assert teaching_rows(OLD + NEW, OLD, replay=4, repeats=3, seed=7) == taught  # the seed decides, nothing else


def test_a_row_whose_reply_changed_is_new_and_replay_is_capped_by_what_exists():
    corrected = _row("old question 0?", "A better answer.")
    taught = teaching_rows([corrected, *OLD[1:3]], OLD, replay=50, repeats=1, seed=0)
    assert (taught["new"], taught["replayed"]) == (1, 2)
    assert corrected in taught["rows"]


def test_nothing_new_since_the_continued_version_is_refused_by_name():
    with pytest.raises(TeachError, match="train.continue_from: .*nothing to teach"):
        teaching_rows(OLD, OLD, replay=4, repeats=3, seed=0)


def _published(tmp_path: Path, adapter: bool = True, base: str = "smollm2-135m-instruct") -> tuple[dict, list[dict]]:
    """A manifest with v0001 (trained on dataset version d1) and the catalog entry of d1."""
    adapter_dir = tmp_path / "adapters" / "run" / "adapter"
    if adapter:
        adapter_dir.mkdir(parents=True)
        (adapter_dir / "adapter_config.json").write_text("{}")
    d1 = tmp_path / "catalog" / "d1"
    d1.mkdir(parents=True)
    (d1 / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in OLD))
    manifest = {
        "current": "v0001",
        "versions": {"v0001": {"dataset_version": "d1", "adapter_dir": str(adapter_dir), "base_model": {"name": base}}},
    }
    return manifest, [{"version_id": "d1", "path": str(d1)}]


def test_parent_of_gives_the_adapter_and_the_dataset_it_was_trained_on(tmp_path):
    manifest, catalog = _published(tmp_path)
    parent = parent_of("v0001", manifest, catalog, "smollm2-135m-instruct")
    assert parent == {
        "version": "v0001",
        "adapter_dir": manifest["versions"]["v0001"]["adapter_dir"],
        "parent_dataset_dir": catalog[0]["path"],
    }


@pytest.mark.parametrize(
    "case, match",
    [
        ("unknown", r"continue_from='v0009': no such version .*published: v0001"),
        ("no adapter", r"records no LoRA adapter folder"),
        ("other base", r"trained on smollm2-135m-instruct, the base model is now tiny-demo"),
        ("dataset gone", r"dataset version 'd1' is not in the catalog"),
    ],
)
def test_a_version_that_cannot_be_continued_is_refused_saying_why(tmp_path, case, match):
    manifest, catalog = _published(tmp_path, adapter=case != "no adapter")
    version, base = ("v0009" if case == "unknown" else "v0001"), "smollm2-135m-instruct"
    if case == "other base":
        base = "tiny-demo"
    if case == "dataset gone":
        catalog = []
    with pytest.raises(TeachError, match=match):
        parent_of(version, manifest, catalog, base)


def _settings(tmp_path: Path, catalog: list[dict], **train):
    """Settings on `tmp_path` as the data root, whose catalog lists `catalog`."""
    settings = load_settings(data_root=tmp_path, train=train)
    (settings.paths.catalog / "catalog.json").write_text(json.dumps({"versions": catalog, "latest": "d1"}))
    return settings


def test_current_falls_back_to_the_base_saying_why_but_a_named_version_does_not(tmp_path):
    manifest, catalog = _published(tmp_path, adapter=False)
    new_version = tmp_path / "catalog" / "d2"
    new_version.mkdir()
    (new_version / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in OLD + NEW))
    dataset_version = DatasetVersion(version_id="d2", path=new_version)
    base = "smollm2-135m-instruct"  # the base model's name

    current = _settings(tmp_path, catalog, continue_from="current")
    parent, why = teaching_parent(current, current.train, base, dataset_version, manifest)
    assert parent is None and "records no LoRA adapter folder" in why and "trains from the base" in why
    nothing_serves = {**manifest, "current": None}
    assert teaching_parent(current, current.train, base, dataset_version, nothing_serves) == (
        None,
        "train.continue_from='current': no version serves yet, so this run trains from the base",
    )

    named = _settings(tmp_path, catalog, continue_from="v0001")
    with pytest.raises(TeachError, match="records no LoRA adapter folder"):
        teaching_parent(named, named.train, base, dataset_version, manifest)

    unset = _settings(tmp_path, catalog)
    assert teaching_parent(unset, unset.train, base, dataset_version, manifest) == (None, "")


def test_a_serving_version_with_its_adapter_is_continued_and_nothing_new_is_said_before_training(tmp_path):
    manifest, catalog = _published(tmp_path)
    settings = _settings(tmp_path, catalog, continue_from="current")
    base = "smollm2-135m-instruct"  # the base model's name
    parent, why = teaching_parent(
        settings, settings.train, base, DatasetVersion(version_id="d1", path=catalog[0]["path"]), {}
    )
    assert (parent, why) == (
        None,
        "train.continue_from='current': no version serves yet, so this run trains from the base",
    )
    d2 = tmp_path / "catalog" / "d2"
    d2.mkdir()
    (d2 / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in OLD + NEW))
    parent, why = teaching_parent(
        settings, settings.train, base, DatasetVersion(version_id="d2", path=str(d2)), manifest
    )
    assert why == "" and parent["version"] == "v0001"
    with pytest.raises(TeachError, match="nothing to teach"):
        teaching_parent(
            settings, settings.train, base, DatasetVersion(version_id="d1", path=catalog[0]["path"]), manifest
        )
