"""Base vs fine-tuned on held-out data: loss and perplexity on assistant tokens, side-by-side greedy answers,
and the promotion gate.

Everything is rendered with the base model's own chat template (`tokenizer.apply_chat_template`), and
generation stops at the model's own end-of-turn/EOS tokens (its generation config), so any template family
is evaluated the same way. The held-out examples are the dataset version's validation split, disjoint from
training by construction (the catalog's split rule).

Promotion gate, two parts, both must pass:
1. Held-out loss: the tuned adapter's held-out loss is below `base_loss * (1 - eval.min_relative_improvement)`;
   the default margin, 0.02 (2% lower loss), keeps a run that merely matches the base (noise) from replacing
   the current model.
2. Answer quality (export/answer_quality.py): on the side-by-side answers, the tuned model repeats sentences
   and n-grams, leaves replies empty or cut, and writes placeholders/template tokens no more often than the
   base model and the serving version (when its figures were recorded), within `eval.quality` tolerances.
   Lower perplexity with looping answers is not an improvement a person would accept.

The base model's side (its held-out loss and its answers) depends only on the base model, the held-out examples,
the prompts and the decoding; it is stored under `<cache>/evaluation/` by those, so a later evaluation on the same
held-out set (every taught run, a retrain with other hyperparameters) computes only the tuned side: half the time.

Answers are decoded greedily with the shared decoding defaults (forge_pipeline/decoding.py: repetition
penalty, token limit), the way the server answers, so the gate judges what a person would be served.
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from pathlib import Path
from typing import Any

from forge_pipeline.atomic import write_json_atomic
from forge_pipeline.decoding import DecodingSettings
from forge_pipeline.errors import ForgeError
from forge_pipeline.export import answer_quality, knowledge
from forge_pipeline.export.config import EvalSettings
from forge_pipeline.records import read_chat_jsonl
from forge_pipeline.train.chat_tokens import assistant_token_labels


class EvaluationInputError(ForgeError, ValueError):
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
        prompts.append(
            {
                "prompt_id": str(row.get("prompt_id") or f"prompt-{number}"),
                "category": row.get("category"),
                "messages": messages,
            }
        )
    return prompts


def validation_loss(model, tokenizer, examples: list[dict], batch_size: int = 8, max_length: int = 1024) -> dict:
    """Token-weighted mean cross-entropy over assistant tokens, and its perplexity."""
    import torch

    encoded = [assistant_token_labels(tokenizer, e["messages"], max_length) for e in examples]
    encoded = [(ids, labels) for ids, labels in encoded if any(label != -100 for label in labels[1:])]
    if not encoded:
        raise EvaluationInputError("no validation example has an assistant token within max_length to score")
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    total_loss, total_tokens = 0.0, 0
    model.eval()
    with torch.no_grad():
        for offset in range(0, len(encoded), batch_size):
            batch = encoded[offset : offset + batch_size]
            width = max(len(ids) for ids, _ in batch)
            input_ids = torch.tensor([ids + [pad] * (width - len(ids)) for ids, _ in batch])
            attention = torch.tensor([[1] * len(ids) + [0] * (width - len(ids)) for ids, _ in batch])
            labels = torch.tensor([lab + [-100] * (width - len(lab)) for _, lab in batch])
            logits = (
                model(input_ids=input_ids.to(model.device), attention_mask=attention.to(model.device))
                .logits.float()
                .cpu()
            )
            shifted_labels = labels[:, 1:]
            loss = torch.nn.functional.cross_entropy(
                logits[:, :-1].reshape(-1, logits.shape[-1]),
                shifted_labels.reshape(-1),
                ignore_index=-100,
                reduction="sum",
            )
            total_loss += float(loss)
            total_tokens += int((shifted_labels != -100).sum())
    mean = total_loss / total_tokens
    return {"loss": mean, "perplexity": math.exp(min(mean, 50.0)), "tokens": total_tokens, "examples": len(encoded)}


def stop_token_ids(model, tokenizer) -> list[int]:
    """Where a reply ends: the model's generation-config EOS ids plus the tokenizer's EOS (its template's end of turn)."""
    configured = model.generation_config.eos_token_id
    ids = list(configured) if isinstance(configured, (list, tuple)) else [configured]
    ids.append(tokenizer.eos_token_id)
    return sorted({int(i) for i in ids if i is not None})


def generate_batch(
    model,
    tokenizer,
    prompts: list[list[dict]],
    max_new_tokens: int,
    batch_size: int = 8,
    repetition_penalty: float = 1.0,
) -> list[dict]:
    """Greedy replies to chat prompts, rendered with the model's template; left-padded batches (one forward per
    new token for the whole batch, much faster on CPU than one prompt at a time). `repetition_penalty` is
    transformers' (the serving default: decoding.repeat_penalty)."""
    import torch

    eos = stop_token_ids(model, tokenizer)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else eos[0]
    side, tokenizer.padding_side = tokenizer.padding_side, "left"
    outputs = []
    try:
        for offset in range(0, len(prompts), batch_size):
            chunk = prompts[offset : offset + batch_size]
            texts = [tokenizer.apply_chat_template(m, tokenize=False, add_generation_prompt=True) for m in chunk]
            batch = tokenizer(texts, add_special_tokens=False, padding=True, return_tensors="pt").to(model.device)
            started = time.perf_counter()
            with torch.no_grad():
                generated = model.generate(
                    **batch,
                    max_new_tokens=max_new_tokens,
                    do_sample=False,
                    repetition_penalty=repetition_penalty,
                    eos_token_id=eos,
                    pad_token_id=pad,
                )
            seconds = (time.perf_counter() - started) / len(chunk)
            prompt_lengths = batch["attention_mask"].sum(dim=1).tolist()
            for row, prompt_tokens in zip(generated[:, batch["input_ids"].shape[1] :].tolist(), prompt_lengths):
                ended = next((i for i, t in enumerate(row) if t in eos), None)
                new = row[: ended + 1] if ended is not None else row
                outputs.append(
                    {
                        "text": tokenizer.decode(new, skip_special_tokens=True).strip(),
                        "seconds": round(seconds, 3),
                        "prompt_tokens": int(prompt_tokens),
                        "completion_tokens": len(new),
                        "stopped": ended is not None,
                    }
                )
    finally:
        tokenizer.padding_side = side
    return outputs


def heldout_prompts(examples: list[dict], limit: int) -> list[dict]:
    """Held-out examples as prompts: the conversation up to its last assistant reply, which is the reference."""
    prompts = []
    for number, example in enumerate(examples[:limit], start=1):
        messages = example["messages"]
        last = max(i for i, m in enumerate(messages) if m["role"] == "assistant")
        prompts.append(
            {
                "prompt_id": f"held-out-{number}",
                "category": "held-out",
                "messages": messages[:last],
                "reference": messages[last]["content"],
            }
        )
    return prompts


def _cell(text: str, width: int = 120) -> str:
    text = (text or "").replace("\n", " ").replace("|", "\\|")
    return text if len(text) <= width else text[: width - 1] + "…"


def _marked(output: dict) -> str:
    """A reply's text for a table cell, led by what is wrong with it (⚠ repeats a sentence, cut, ...)."""
    flags = answer_quality.marks(output["quality"]) if "quality" in output else ""
    return f"⚠ {flags}: {output['text']}" if flags else output["text"]


def side_by_side_markdown(rows: list[dict]) -> str:
    """One row per prompt: the prompt, the held-out reference (if any), base and tuned answers (marked with
    what a person would notice: a repeated sentence, a cut or empty reply, template text), seconds/tokens."""
    lines = [
        "| prompt | reference | base | tuned | base s / tokens | tuned s / tokens |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for row in rows:
        prompt = row["messages"][-1]["content"] if row["messages"] else ""
        lines.append(
            f"| {_cell(row['prompt_id'] + ': ' + prompt, 80)} | {_cell(row.get('reference') or '', 80)} "
            f"| {_cell(_marked(row['base']))} | {_cell(_marked(row['tuned']))} "
            f"| {row['base']['seconds']} / {row['base']['completion_tokens']} "
            f"| {row['tuned']['seconds']} / {row['tuned']['completion_tokens']} |"
        )
    return "\n".join(lines)


def score_answers(rows: list[dict]) -> dict[str, dict]:
    """Adds each reply's answer-quality figures (`row[side]["quality"]`) and returns the summary per side."""
    for row in rows:
        for side in ("base", "tuned"):
            output = row[side]
            output["quality"] = answer_quality.reply_quality(output["text"], output["stopped"], row.get("reference"))
    return {side: answer_quality.summarize([r[side]["quality"] for r in rows]) for side in ("base", "tuned")}


def decide(
    loss_gate: tuple[bool, str], quality: dict[str, dict], settings: EvalSettings, serving: dict | None = None
) -> tuple[bool, str, list[str]]:
    """(promoted, reason, quality problems): the loss gate and the answer-quality gate together. `serving` is
    the serving version's recorded summary on the eval prompts (`{"version", "signature", "summary"}`), compared
    with this run's eval-prompt summary (`quality["eval_prompts"]`) when both were decoded the same way on the
    same prompts (same signature)."""
    baselines = {"base": quality["base"]}
    if serving and serving.get("summary") and serving.get("signature") == quality.get("signature"):
        baselines[f"serving {serving['version']}"] = serving["summary"]
    passes, problems = answer_quality.quality_gate(quality["tuned"], {"base": quality["base"]}, settings.quality)
    if len(baselines) > 1 and quality.get("eval_prompts"):
        name = next(n for n in baselines if n != "base")
        more_passes, more = answer_quality.quality_gate(
            quality["eval_prompts"], {name: baselines[name]}, settings.quality
        )
        passes, problems = passes and more_passes, problems + [f"on the eval prompts: {p}" for p in more]
    promoted, reason = loss_gate
    if settings.quality.enabled and not passes:
        what = f"answers worse than {' / '.join(baselines)}: {'; '.join(problems)}"
        reason = f"not promoted: {what} (held-out loss alone: {reason})" if promoted else f"{reason}; {what}"
        promoted = False
    return promoted, reason, problems


def gate(base_loss: float, tuned_loss: float, min_relative_improvement: float) -> tuple[bool, str]:
    threshold = base_loss * (1.0 - min_relative_improvement)
    if tuned_loss < threshold:
        return True, (
            f"promoted: tuned held-out loss {tuned_loss:.4f} < {threshold:.4f} "
            f"(base {base_loss:.4f} minus {min_relative_improvement:.1%})"
        )
    return False, (
        f"not promoted: tuned held-out loss {tuned_loss:.4f} is not below {threshold:.4f} "
        f"(base {base_loss:.4f} minus {min_relative_improvement:.1%}); the version is kept but not current"
    )


def evaluate_adapter(
    base_model_dir: Path,
    adapter_dir: Path,
    validation_examples: list[dict],
    eval_prompts_path: Path,
    settings: EvalSettings,
    max_length: int = 1024,
    tracking_uri: str | None = None,
    mlflow_run_id: str | None = None,
    decoding: DecodingSettings | None = None,
    serving_quality: dict | None = None,
    knowledge_questions: list[dict] | None = None,
    cache_dir: Path | None = None,
) -> dict:
    """Score base and tuned on the same held-out examples and prompts; decide promotion.

    One base model is loaded and the adapter is switched off for the base figures, so both sides share
    exactly the same weights apart from the LoRA delta.
    """
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    examples = validation_examples[: settings.max_eval_examples]
    if not examples:
        raise EvaluationInputError("no validation examples: the dataset version's validation split is empty")
    prompts = load_eval_prompts(eval_prompts_path)[: settings.max_eval_prompts]
    prompts += heldout_prompts(examples, settings.max_heldout_prompts)
    tokenizer = AutoTokenizer.from_pretrained(base_model_dir)
    # fp32 on CPU (bf16 matmuls are slow there); bf16 on a GPU, where a real base model would not fit in fp32.
    on_gpu = torch.cuda.is_available()
    base = AutoModelForCausalLM.from_pretrained(base_model_dir, dtype=torch.bfloat16 if on_gpu else torch.float32)
    # transformers decorates PreTrainedModel.to with functools.wraps(torch.nn.Module.to), which types the bound
    # method as the unbound function: the checker takes the device for `self`.
    model = PeftModel.from_pretrained(base.to("cuda" if on_gpu else "cpu"), str(adapter_dir))  # type: ignore[arg-type]
    model.eval()

    started = time.perf_counter()
    decoding = decoding or DecodingSettings()
    limit = settings.max_new_tokens or decoding.max_tokens
    questions = knowledge_questions or []
    # One generation pass per side for the side-by-side prompts and the knowledge questions together.
    messages = [p["messages"] for p in prompts] + [q["messages"] for q in questions]
    cached = base_side_path(cache_dir, base_model_dir, examples, messages, limit, decoding, max_length)
    from_cache = cached is not None and cached.is_file()
    if cached is not None and from_cache:
        stored = json.loads(cached.read_text(encoding="utf-8"))
        base_figures, base_outputs = stored["figures"], stored["outputs"]
    else:
        with model.disable_adapter():
            base_figures = validation_loss(model, tokenizer, examples, max_length=max_length)
            base_outputs = generate_batch(model, tokenizer, messages, limit, repetition_penalty=decoding.repeat_penalty)
        if cached is not None:
            write_json_atomic(cached, {"figures": base_figures, "outputs": base_outputs})
    tuned_figures = validation_loss(model, tokenizer, examples, max_length=max_length)
    tuned_outputs = generate_batch(model, tokenizer, messages, limit, repetition_penalty=decoding.repeat_penalty)
    rows = [{**p, "base": b, "tuned": t} for p, b, t in zip(prompts, base_outputs, tuned_outputs)]
    knowing = knowledge.score_knowledge(
        questions,
        [o["text"] for o in base_outputs[len(prompts) :]],
        [o["text"] for o in tuned_outputs[len(prompts) :]],
    )
    quality: dict[str, Any] = score_answers(rows)  # + the signature and the eval prompts' summary, below
    eval_rows = [r for r in rows if r.get("reference") is None]
    # The eval prompts are the same file every run: a later run compares its answers with this version's, when
    # they were decoded the same way (the signature).
    signature = hashlib.sha256(
        json.dumps(
            [[p["messages"] for p in prompts if p.get("reference") is None], limit, decoding.repeat_penalty]
        ).encode()
    ).hexdigest()[:16]
    quality["signature"] = signature
    if eval_rows:
        quality["eval_prompts"] = answer_quality.summarize([r["tuned"]["quality"] for r in eval_rows])
    eval_prompt_quality = {"signature": signature, "summary": quality["eval_prompts"]} if eval_rows else None

    loss_gate = gate(base_figures["loss"], tuned_figures["loss"], settings.min_relative_improvement)
    promoted, reason, quality_problems = decide(loss_gate, quality, settings, serving_quality)
    result = {
        "base_loss": base_figures["loss"],
        "tuned_loss": tuned_figures["loss"],
        "base_perplexity": base_figures["perplexity"],
        "tuned_perplexity": tuned_figures["perplexity"],
        "relative_improvement": (base_figures["loss"] - tuned_figures["loss"]) / base_figures["loss"],
        "perplexity_change": tuned_figures["perplexity"] / base_figures["perplexity"] - 1.0,
        "validation_examples": base_figures["examples"],
        "validation_tokens": base_figures["tokens"],
        "prompts": len(rows),
        "heldout_prompts": sum(1 for r in rows if r.get("reference") is not None),
        "mean_seconds_base": sum(r["base"]["seconds"] for r in rows) / max(len(rows), 1),
        "mean_seconds_tuned": sum(r["tuned"]["seconds"] for r in rows) / max(len(rows), 1),
        "promoted": promoted,
        "reason": reason,
        "loss_gate_passed": loss_gate[0],
        "quality_gate_passed": not quality_problems,
        "quality_problems": quality_problems,
        "knowledge": knowing,
        "base_quality": quality["base"],
        "tuned_quality": quality["tuned"],
        "eval_prompt_quality": eval_prompt_quality,
        "decoding": {"max_new_tokens": limit, "repetition_penalty": decoding.repeat_penalty, "greedy": True},
        "min_relative_improvement": settings.min_relative_improvement,
        "markdown": side_by_side_markdown(rows),
        "generations": rows,
        "seconds": round(time.perf_counter() - started, 3),
        "base_side_cached": from_cache,
        "mlflow_logged": False,
    }
    if mlflow_run_id and tracking_uri:
        result["mlflow_logged"] = log_to_mlflow(tracking_uri, mlflow_run_id, result)
    return result


def base_side_path(
    cache_dir: Path | None,
    base_model_dir: Path,
    examples: list[dict],
    messages: list[list[dict]],
    limit: int,
    decoding: DecodingSettings,
    max_length: int,
) -> Path | None:
    """Where the base model's figures and answers for these inputs are stored (None without a cache folder).
    The key covers everything they depend on: the base model's files (names and sha256: a copied or moved data
    root keeps its cache, a rebuilt model does not), the held-out examples, the prompts, the decoding, and the
    torch/transformers versions that compute them."""
    if cache_dir is None:
        return None
    import torch
    import transformers

    from forge_pipeline.export.manifest import sha256_of

    files = sorted(
        (p.relative_to(base_model_dir).as_posix(), sha256_of(p)) for p in Path(base_model_dir).rglob("*") if p.is_file()
    )
    identity = {
        "base_model": files,
        "examples": examples,
        "messages": messages,
        "decoding": [limit, decoding.repeat_penalty, max_length],
        "libraries": [torch.__version__, transformers.__version__],
    }
    key = hashlib.sha256(json.dumps(identity, sort_keys=True, default=str).encode()).hexdigest()[:24]
    return Path(cache_dir) / "evaluation" / f"base-{key}.json"


def generations_table(rows: list[dict]) -> dict[str, list]:
    """The side-by-side answers as columns (MLflow's table artifact, viewable in the run's Evaluation tab)."""
    return {
        "prompt_id": [r["prompt_id"] for r in rows],
        "category": [r.get("category") or "" for r in rows],
        "prompt": [r["messages"][-1]["content"] if r["messages"] else "" for r in rows],
        "reference": [r.get("reference") or "" for r in rows],
        "base": [r["base"]["text"] for r in rows],
        "tuned": [r["tuned"]["text"] for r in rows],
        "base_tokens": [r["base"]["completion_tokens"] for r in rows],
        "tuned_tokens": [r["tuned"]["completion_tokens"] for r in rows],
        "base_marks": [answer_quality.marks(r["base"]["quality"]) if "quality" in r["base"] else "" for r in rows],
        "tuned_marks": [answer_quality.marks(r["tuned"]["quality"]) if "quality" in r["tuned"] else "" for r in rows],
    }


def log_to_mlflow(tracking_uri: str, run_id: str, result: dict) -> bool:
    """Attach the table and figures to the training run (through the client, so no run is started or ended)."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=tracking_uri)
    client.log_text(run_id, result["markdown"], "evaluation/side_by_side.md")
    client.log_table(run_id, generations_table(result["generations"]), "evaluation/side_by_side.json")
    client.log_dict(run_id, result["generations"], "evaluation/generations.json")
    for key in ("base_loss", "tuned_loss", "base_perplexity", "tuned_perplexity", "relative_improvement"):
        client.log_metric(run_id, f"eval_{key}", float(result[key]))
    for side in ("base", "tuned"):
        for figure, value in (result.get(f"{side}_quality") or {}).items():
            if isinstance(value, (int, float)):
                client.log_metric(run_id, f"eval_{side}_{figure}", float(value))
    knowing = result.get("knowledge") or {}
    for key in ("base_score", "tuned_score", "base_held_out_score", "tuned_held_out_score"):
        if knowing.get(key) is not None:
            client.log_metric(run_id, f"eval_knowledge_{key}", float(knowing[key]))
    if knowing.get("rows"):
        client.log_dict(run_id, knowing["rows"], "evaluation/knowledge.json")
    client.set_tag(run_id, "forge.gate", "promoted" if result["promoted"] else "not promoted")
    return True
