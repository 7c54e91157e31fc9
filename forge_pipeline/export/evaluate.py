"""Base vs fine-tuned: validation loss on assistant tokens, side-by-side generations, and the promotion gate."""

from __future__ import annotations

import math
import time
from pathlib import Path

from forge_pipeline.export.config import EvalSettings
from forge_pipeline.records import read_chat_jsonl


class EvaluationInputError(ValueError):
    """A validation example or eval prompt is malformed; the message names file, line and field."""


def _read_jsonl_messages(path: Path, need_assistant: bool) -> list[dict]:
    path = Path(path)
    if not path.is_file():
        raise EvaluationInputError(f"{path}: no such file")
    return read_chat_jsonl(path, need_assistant, error=EvaluationInputError)


def load_validation_examples(path: Path) -> list[dict]:
    return _read_jsonl_messages(path, need_assistant=True)


def load_eval_prompts(path: Path) -> list[dict]:
    """Prompts end where the model should answer: a trailing assistant turn would be the reference, so it is dropped."""
    prompts = []
    for number, row in enumerate(_read_jsonl_messages(path, need_assistant=False), start=1):
        messages = row["messages"]
        while messages and messages[-1]["role"] == "assistant":
            messages = messages[:-1]
        prompts.append({"prompt_id": str(row.get("prompt_id") or f"prompt-{number}"),
                        "category": row.get("category"), "messages": messages})
    return prompts


def assistant_token_labels(tokenizer, messages: list[dict], max_length: int) -> tuple[list[int], list[int]]:
    """Token ids of the rendered chat and labels that keep only assistant replies (others are -100).

    Spans are found in characters (prefix rendered with the generation prompt vs through the reply), then
    mapped to tokens through offsets, so it works for any chat template without a {% generation %} marker.
    """
    text = tokenizer.apply_chat_template(messages, tokenize=False)
    spans = []
    for index, message in enumerate(messages):
        if message["role"] != "assistant":
            continue
        start = len(tokenizer.apply_chat_template(messages[:index], tokenize=False, add_generation_prompt=True)) if index else 0
        end = len(tokenizer.apply_chat_template(messages[: index + 1], tokenize=False))
        spans.append((start, end))
    encoded = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True, truncation=True, max_length=max_length)
    labels = [
        token if any(start <= offset[0] < end for start, end in spans) else -100
        for token, offset in zip(encoded["input_ids"], encoded["offset_mapping"])
    ]
    return list(encoded["input_ids"]), labels


def validation_loss(model, tokenizer, examples: list[dict], batch_size: int = 8, max_length: int = 1024) -> dict:
    """Token-weighted mean cross-entropy over assistant tokens, and its perplexity."""
    import torch

    encoded = [assistant_token_labels(tokenizer, e["messages"], max_length) for e in examples]
    encoded = [(ids, labels) for ids, labels in encoded if any(l != -100 for l in labels[1:])]
    if not encoded:
        raise EvaluationInputError("no validation example has an assistant token within max_length to score")
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    total_loss, total_tokens = 0.0, 0
    model.eval()
    with torch.no_grad():
        for offset in range(0, len(encoded), batch_size):
            batch = encoded[offset: offset + batch_size]
            width = max(len(ids) for ids, _ in batch)
            input_ids = torch.tensor([ids + [pad] * (width - len(ids)) for ids, _ in batch])
            attention = torch.tensor([[1] * len(ids) + [0] * (width - len(ids)) for ids, _ in batch])
            labels = torch.tensor([lab + [-100] * (width - len(lab)) for _, lab in batch])
            logits = model(input_ids=input_ids.to(model.device), attention_mask=attention.to(model.device)).logits.float().cpu()
            shifted_labels = labels[:, 1:]
            loss = torch.nn.functional.cross_entropy(
                logits[:, :-1].reshape(-1, logits.shape[-1]), shifted_labels.reshape(-1), ignore_index=-100, reduction="sum"
            )
            total_loss += float(loss)
            total_tokens += int((shifted_labels != -100).sum())
    mean = total_loss / total_tokens
    return {"loss": mean, "perplexity": math.exp(min(mean, 50.0)), "tokens": total_tokens, "examples": len(encoded)}


def generate(model, tokenizer, messages: list[dict], max_new_tokens: int) -> dict:
    import torch

    ids = tokenizer.apply_chat_template(messages, tokenize=True, add_generation_prompt=True, return_dict=True,
                                        return_tensors="pt").to(model.device)
    stop = tokenizer.convert_tokens_to_ids("<|im_end|>")
    eos = [t for t in {tokenizer.eos_token_id, stop if isinstance(stop, int) and stop >= 0 else None} if t is not None]
    started = time.perf_counter()
    with torch.no_grad():
        output = model.generate(**ids, max_new_tokens=max_new_tokens, do_sample=False, eos_token_id=eos or None,
                                pad_token_id=tokenizer.pad_token_id if tokenizer.pad_token_id is not None else eos[0])
    seconds = time.perf_counter() - started
    new_tokens = output[0, ids["input_ids"].shape[1]:]
    return {"text": tokenizer.decode(new_tokens, skip_special_tokens=True).strip(), "seconds": round(seconds, 3),
            "prompt_tokens": int(ids["input_ids"].shape[1]), "completion_tokens": int(new_tokens.shape[0])}


def _cell(text: str, width: int = 120) -> str:
    text = text.replace("\n", " ").replace("|", "\\|")
    return text if len(text) <= width else text[: width - 1] + "…"


def side_by_side_markdown(rows: list[dict]) -> str:
    lines = ["| prompt | base | tuned | base s / tokens | tuned s / tokens |", "| --- | --- | --- | --- | --- |"]
    for row in rows:
        prompt = row["messages"][-1]["content"] if row["messages"] else ""
        lines.append(
            f"| {_cell(row['prompt_id'] + ': ' + prompt, 80)} | {_cell(row['base']['text'])} | {_cell(row['tuned']['text'])} "
            f"| {row['base']['seconds']} / {row['base']['completion_tokens']} "
            f"| {row['tuned']['seconds']} / {row['tuned']['completion_tokens']} |"
        )
    return "\n".join(lines)


def gate(base_loss: float, tuned_loss: float, min_relative_improvement: float) -> tuple[bool, str]:
    threshold = base_loss * (1.0 - min_relative_improvement)
    if tuned_loss < threshold:
        return True, (f"promoted: tuned validation loss {tuned_loss:.4f} < {threshold:.4f} "
                      f"(base {base_loss:.4f} minus {min_relative_improvement:.1%})")
    return False, (f"not promoted: tuned validation loss {tuned_loss:.4f} is not below {threshold:.4f} "
                   f"(base {base_loss:.4f} minus {min_relative_improvement:.1%}); the version is kept but not current")


def evaluate_adapter(
    base_model_dir: Path,
    adapter_dir: Path,
    validation_examples: list[dict],
    eval_prompts_path: Path,
    settings: EvalSettings,
    max_length: int = 1024,
    tracking_uri: str | None = None,
    mlflow_run_id: str | None = None,
) -> dict:
    """Score base and tuned on the same validation examples and prompts; decide promotion.

    One base model is loaded and the adapter is switched off for the base figures, so both sides share
    exactly the same weights apart from the LoRA delta.
    """
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    examples = validation_examples[: settings.max_eval_examples]
    if not examples:
        raise EvaluationInputError("no validation examples: the dataset version's validation split is empty")
    prompts = load_eval_prompts(eval_prompts_path)
    tokenizer = AutoTokenizer.from_pretrained(base_model_dir)
    # fp32 on CPU (bf16 matmuls are slow there); bf16 on a GPU, where a real base model would not fit in fp32.
    on_gpu = torch.cuda.is_available()
    base = AutoModelForCausalLM.from_pretrained(base_model_dir, dtype=torch.bfloat16 if on_gpu else torch.float32)
    model = PeftModel.from_pretrained(base.to("cuda" if on_gpu else "cpu"), str(adapter_dir))
    model.eval()

    started = time.perf_counter()
    with model.disable_adapter():
        base_figures = validation_loss(model, tokenizer, examples, max_length=max_length)
        base_outputs = [generate(model, tokenizer, p["messages"], settings.max_new_tokens) for p in prompts]
    tuned_figures = validation_loss(model, tokenizer, examples, max_length=max_length)
    tuned_outputs = [generate(model, tokenizer, p["messages"], settings.max_new_tokens) for p in prompts]
    rows = [{**p, "base": b, "tuned": t} for p, b, t in zip(prompts, base_outputs, tuned_outputs)]

    promoted, reason = gate(base_figures["loss"], tuned_figures["loss"], settings.min_relative_improvement)
    markdown = side_by_side_markdown(rows)
    result = {
        "base_loss": base_figures["loss"], "tuned_loss": tuned_figures["loss"],
        "base_perplexity": base_figures["perplexity"], "tuned_perplexity": tuned_figures["perplexity"],
        "relative_improvement": (base_figures["loss"] - tuned_figures["loss"]) / base_figures["loss"],
        "validation_examples": base_figures["examples"], "validation_tokens": base_figures["tokens"],
        "prompts": len(rows),
        "mean_seconds_base": sum(r["base"]["seconds"] for r in rows) / max(len(rows), 1),
        "mean_seconds_tuned": sum(r["tuned"]["seconds"] for r in rows) / max(len(rows), 1),
        "promoted": promoted, "reason": reason, "markdown": markdown, "generations": rows,
        "seconds": round(time.perf_counter() - started, 3), "mlflow_logged": False,
    }
    if mlflow_run_id and tracking_uri:
        result["mlflow_logged"] = log_to_mlflow(tracking_uri, mlflow_run_id, result)
    return result


def log_to_mlflow(tracking_uri: str, run_id: str, result: dict) -> bool:
    """Attach the table and figures to the training run (through the client, so no run is started or ended)."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=tracking_uri)
    client.log_text(run_id, result["markdown"], "evaluation/side_by_side.md")
    client.log_dict(run_id, result["generations"], "evaluation/generations.json")
    for key in ("base_loss", "tuned_loss", "base_perplexity", "tuned_perplexity", "relative_improvement"):
        client.log_metric(run_id, f"eval_{key}", float(result[key]))
    client.set_tag(run_id, "forge.gate", "promoted" if result["promoted"] else "not promoted")
    return True
