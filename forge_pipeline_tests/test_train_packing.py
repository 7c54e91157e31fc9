"""Packing is correct: no token attends across packed examples (sdpa and eager, through trl's real collator)."""

from __future__ import annotations

import pytest

from forge_pipeline.settings import load_settings
from forge_pipeline.train.config import TinyModelSettings
from forge_pipeline.train.sft import corpus_texts, load_splits, sft_config, train_lora
from forge_pipeline.train.tiny_model import build_tiny_llama
from forge_pipeline_tests.model_fixtures import write_tiny_dataset_version


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("pack")
    version = write_tiny_dataset_version(root / "dataset", save_hf=False)
    base = build_tiny_llama(corpus_texts(version["path"]), root / "base", TinyModelSettings(vocab_size=400))
    return root, version, base


@pytest.mark.parametrize("attn", ["sdpa", "eager"])
def test_packed_rows_give_each_example_its_own_logits(tiny, attn):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import SFTTrainer

    root, version, base = tiny
    tokenizer = AutoTokenizer.from_pretrained(base)
    model = AutoModelForCausalLM.from_pretrained(base, attn_implementation=attn)
    hp = load_settings(data_root=root, train={"packing": True, "max_length": 160}).train
    args = sft_config(root / f"out-{attn}", hp, False, {"quantization": "none", "gradient_checkpointing": False}, False)
    trainer = SFTTrainer(
        model=model, args=args, train_dataset=load_splits(version["path"])["train"], processing_class=tokenizer
    )
    # padding-free: the collator also flattens the batch into one row, with positions restarting per example
    batch = trainer.data_collator([trainer.train_dataset[0], trainer.train_dataset[1]])
    ids, positions = batch["input_ids"], batch["position_ids"]
    starts = [i for i, p in enumerate(positions[0].tolist()) if p == 0] + [ids.shape[1]]
    assert len(starts) - 1 >= 2, "the row should hold several packed examples"
    with torch.no_grad():
        packed = model(input_ids=ids, position_ids=positions).logits[0]
        for a, b in zip(starts, starts[1:]):
            alone = model(input_ids=ids[:, a:b]).logits[0]
            assert (packed[a:b] - alone).abs().max() < 1e-4
        # Control: the same row as one sequence (positions not reset) does mix examples, so the check has teeth.
        mixed = model(input_ids=ids).logits[0]
    a, b = starts[1], starts[2]
    assert (mixed[a:b] - model(input_ids=ids[:, a:b]).logits[0]).abs().max() > 1e-3


def test_pad_to_multiple_of_gives_one_shape_without_changing_real_tokens(tiny):
    """The GPU recipe pads packed batches to one length (flex compiles once); padding must change nothing."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import SFTTrainer

    root, version, base = tiny
    tokenizer = AutoTokenizer.from_pretrained(base)
    model = AutoModelForCausalLM.from_pretrained(base, attn_implementation="sdpa")
    hp = load_settings(data_root=root, train={"packing": True, "max_length": 160, "pad_to_multiple_of": 512}).train
    args = sft_config(root / "out-padded", hp, False, {"quantization": "none", "gradient_checkpointing": False}, False)
    trainer = SFTTrainer(
        model=model, args=args, train_dataset=load_splits(version["path"])["train"], processing_class=tokenizer
    )
    rows = [trainer.train_dataset[i] for i in range(2)]
    padded = trainer.data_collator(rows)
    real_length = sum(len(r["input_ids"]) for r in rows)
    assert padded["input_ids"].shape[1] == 512 > real_length
    assert (padded["labels"][0, real_length:] == -100).all(), "padding must never be trained on"
    with torch.no_grad():
        logits = model(input_ids=padded["input_ids"], position_ids=padded["position_ids"]).logits[0, :real_length]
        unpadded = model(
            input_ids=padded["input_ids"][:, :real_length], position_ids=padded["position_ids"][:, :real_length]
        ).logits[0]
    assert (logits - unpadded).abs().max() < 1e-4


@pytest.mark.slow
def test_packed_training_runs_on_cpu(tiny):
    root, version, base = tiny
    settings = load_settings(
        data_root=root / "data",
        train={
            "packing": True,
            "max_steps": 4,
            "max_length": 96,
            "per_device_train_batch_size": 2,
            "gradient_accumulation_steps": 1,
            "save_steps": 100,
        },
    )
    result = train_lora(
        version["path"], base, settings.paths.adapters / "packed", settings.train, settings.tracking_uri
    )
    assert result["metrics"]["global_step"] == 4 and result["hardware"]["attn_implementation"] == "sdpa"
    assert result["metrics"]["final_loss"] < result["metrics"]["first_loss"]
