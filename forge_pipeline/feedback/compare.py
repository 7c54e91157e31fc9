"""`forge compare`: two model versions side by side, from what the server logged and what MLflow recorded.

* served log (serve/served/*.jsonl): requests, latency and token counts per version;
* interactions: up/down ratings and corrections per version, and head-to-head choices between the two
  (a choice whose two replies came from A and B is a win for the chosen one);
* manifest + MLflow: the evaluation figures of each version's training run.
"""

from __future__ import annotations

import statistics
from collections import Counter

from forge_pipeline.export.manifest import ManifestError


def _mean(values: list[float]) -> float | None:
    return round(statistics.fmean(values), 2) if values else None


def _median(values: list[float]) -> float | None:
    return round(statistics.median(values), 2) if values else None


def serving_stats(served: list[dict], version: str) -> dict:
    rows = [r for r in served if r.get("model_version") == version]
    latency = [r["latency_ms"] for r in rows if r.get("latency_ms") is not None]
    prompt = [r["prompt_tokens"] for r in rows if r.get("prompt_tokens") is not None]
    completion = [r["completion_tokens"] for r in rows if r.get("completion_tokens") is not None]
    return {
        "requests": len(rows),
        "candidate_requests": sum(r.get("route") == "candidate" for r in rows),
        "latency_ms_median": _median(latency),
        "latency_ms_mean": _mean(latency),
        "prompt_tokens_mean": _mean(prompt),
        "completion_tokens_mean": _mean(completion),
        "completion_tokens_total": sum(completion),
    }


def feedback_stats(interactions: list, version_a: str, version_b: str) -> dict[str, dict]:
    """Ratings and corrections per version, and head-to-head wins between the two versions."""
    ratings: dict[str, Counter[str]] = {v: Counter() for v in (version_a, version_b)}
    wins: Counter[str] = Counter()
    for record in interactions:
        if record.model_version in ratings:
            if record.rating:
                ratings[record.model_version][record.rating] += 1
            if record.corrected_reply:
                ratings[record.model_version]["corrected"] += 1
        choice = record.choice
        if choice is not None and choice.model_versions and set(choice.model_versions) == {version_a, version_b}:
            wins[choice.model_versions[choice.chosen]] += 1
    head_to_head = wins[version_a] + wins[version_b]
    out = {}
    for version in (version_a, version_b):
        up, down = ratings[version]["up"], ratings[version]["down"]
        out[version] = {
            "rated_up": up,
            "rated_down": down,
            "corrected": ratings[version]["corrected"],
            "up_share": round(up / (up + down), 3) if up + down else None,
            "choice_wins": wins[version],
            "head_to_head_choices": head_to_head,
            "win_rate": round(wins[version] / head_to_head, 3) if head_to_head else None,
        }
    return out


def evaluation_stats(manifest: dict, version: str, tracking_uri: str | None) -> dict:
    """The manifest's evaluation block plus the MLflow run's final metrics (eval/loss/reward figures)."""
    entry = manifest["versions"].get(version)
    if entry is None:
        raise ManifestError(
            f"version {version!r} is not in the manifest (versions: {', '.join(sorted(manifest['versions']))})"
        )
    evaluation = {
        k: v
        for k, v in (entry.get("evaluation") or {}).items()
        if k in ("base_loss", "tuned_loss", "tuned_perplexity", "relative_improvement", "promoted")
    }
    out = {"kind": entry.get("kind", "sft"), "mlflow_run_id": entry.get("mlflow_run_id"), **evaluation}
    if tracking_uri and entry.get("mlflow_run_id"):
        try:
            from mlflow.tracking import MlflowClient

            metrics = MlflowClient(tracking_uri).get_run(entry["mlflow_run_id"]).data.metrics
            out.update(
                {
                    f"mlflow:{k}": round(v, 4)
                    for k, v in sorted(metrics.items())
                    if any(word in k for word in ("eval", "loss", "perplexity", "rewards/"))
                }
            )
        except Exception as err:  # a missing run must not hide the serving figures
            out["mlflow_error"] = f"{type(err).__name__}: {err}"
    return out


def compare_versions(
    version_a: str,
    version_b: str,
    manifest: dict,
    served: list[dict],
    interactions: list,
    tracking_uri: str | None = None,
) -> dict[str, dict]:
    """{version: {figure: value}} for both versions, every figure present on both sides."""
    feedback = feedback_stats(interactions, version_a, version_b)
    result = {}
    for version in (version_a, version_b):
        role = (
            "current"
            if version == manifest.get("current")
            else "candidate"
            if (manifest.get("candidate") or {}).get("version") == version
            else "-"
        )
        result[version] = {
            "role": role,
            **serving_stats(served, version),
            **feedback[version],
            **evaluation_stats(manifest, version, tracking_uri),
        }
    keys = list(dict.fromkeys(k for figures in result.values() for k in figures))
    return {v: {k: figures.get(k) for k in keys} for v, figures in result.items()}
