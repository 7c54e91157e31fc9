"""Asset selections as `forge demo --select` reads them, and the selection that reruns a failed step."""

from __future__ import annotations

import re

from forge_pipeline.errors import ForgeError


class SelectionError(ForgeError, ValueError):
    """An asset selection that names no asset of the graph, or cannot be parsed; the message says which part."""


_SELECTION_OPERATORS = re.compile(r"^(?:\d*\+|\*)+|(?:\+\d*|\*)+$")  # Dagster's graph operators around a key


def _named_keys(clause: str) -> list[str]:
    """The asset keys a clause names: bare words (graph operators stripped) and `key:` values; other
    attributes (`group:`, `kind:`, `tag:`), boolean words and wildcards name no single key."""
    names = []
    for token in re.split(r"[\s()]+", clause):
        token = _SELECTION_OPERATORS.sub("", token)
        attribute, colon, value = token.partition(":")
        name = (value if attribute == "key" else "") if colon else token
        name = name.strip("\"'")
        if name and name.lower() not in ("and", "or", "not") and "*" not in name:
            names.append(name)
    return names


def resolve_selection(select: str, asset_graph) -> set:
    """The asset keys `select` chooses. A selection is one or more clauses separated by commas or spaces, each
    parsed by Dagster itself (`AssetSelection.from_string`: `name`, `*name`, `name+`, `2+name`, `key:name or
    key:other`, `group:ingest`, ...). The whole string is tried first, so Dagster's own syntax with spaces (`key:a
    or key:b`) keeps its meaning; clauses are tried one by one only when Dagster cannot read the whole. A clause
    naming a key the graph does not have is refused with the closest existing keys."""
    import difflib

    import dagster as dg

    text = select.strip()
    if text in ("", "*"):
        return set(asset_graph.get_all_asset_keys())
    known = sorted(key.to_user_string() for key in asset_graph.get_all_asset_keys())

    def parse(clause: str):
        try:
            return dg.AssetSelection.from_string(clause)
        except dg.DagsterError:
            return None

    whole = parse(text) if "," not in text else None
    clauses = [text] if whole is not None else [c for c in re.split(r"[,\s]+", text) if c]
    missing = sorted({name for clause in clauses for name in _named_keys(clause) if name not in known})
    if missing:
        hints = []
        for name in missing:
            close = difflib.get_close_matches(name, known, n=3, cutoff=0.5)
            hints.append(f"{name!r}" + (f" (did you mean {' or '.join(close)}?)" if close else ""))
        raise SelectionError(f"no asset named {', '.join(hints)}; the assets are: {', '.join(known)}")
    selections = [whole] if whole is not None else [parse(c) for c in clauses]
    unreadable = [c for c, parsed in zip(clauses, selections) if parsed is None]
    if unreadable:
        raise SelectionError(
            f"Dagster cannot read {', '.join(map(repr, unreadable))}; give asset keys separated by spaces or "
            "commas, each with optional +/* ('*lora_adapter adapter_evaluation'), or Dagster's selection syntax "
            "('key:base_model or key:lora_adapter')"
        )
    try:
        # from_coercible: Dagster's own union of the clauses, each read by from_string.
        selection = whole if whole is not None else dg.AssetSelection.from_coercible(clauses)
        return set(selection.resolve(asset_graph))
    except dg.DagsterError as err:
        raise SelectionError(str(err)) from None


def asset_of_step(asset_graph, step_key: str):
    """The asset a step materializes or checks (a check's op is named `<asset>_<check>`)."""
    for key in asset_graph.get_all_asset_keys():
        if key.to_python_identifier() == step_key:
            return key
    for check in asset_graph.asset_check_keys:
        if f"{check.asset_key.to_python_identifier()}_{check.name}" == step_key:
            return check.asset_key
    return None


def rerun_selection(asset_graph, failed, select: str) -> str:
    """An asset selection that reruns `failed` and what `select` asked for after it (nothing upstream that
    already succeeded, nothing downstream that was not asked for), written so AssetSelection.from_string
    (which `--select` uses) gives exactly that set back."""
    import dagster as dg

    asked = dg.AssetSelection.from_string(select) if select != "*" else dg.AssetSelection.all()
    name = failed.to_user_string()
    downstream = dg.AssetSelection.assets(failed).downstream()
    target = {k for k in (downstream & asked).resolve(asset_graph) if asset_graph.get(k).is_materializable}
    sinks = [k for k in target if not (asset_graph.get(k).child_keys & target)]
    ends = " or ".join(f'+key:"{k.to_user_string()}"' for k in sorted(sinks))
    candidates = [
        f"{name}*",
        name,
        f'key:"{name}"+ and ' + (ends if len(sinks) == 1 else f"({ends})"),
        " or ".join(f'key:"{k.to_user_string()}"' for k in sorted(target)),
    ]
    for candidate in candidates:
        try:
            chosen = dg.AssetSelection.from_string(candidate).resolve(asset_graph)
        except Exception:  # a form this Dagster version does not parse: try the next
            continue
        if {k for k in chosen if asset_graph.get(k).is_materializable} == target:
            return candidate
    return select
