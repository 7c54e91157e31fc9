"""Privacy (issue 8): unique PII planted in every kind of input never gets past the scrub.

The chain runs for real up to dataset_version (ingest → presidio scrub → filter → MiniLM/FAISS dedup →
curate → catalog) in a Dagster instance with on-disk SQLite storage, then every file under the data root
and the Dagster home (event log, run storage, compute logs) and everything printed are searched for the
planted values. Only the files that hold the person's raw input by design may contain them (the ingest
tables, their quarantine and the vault parse cache); a new file anywhere else that carries PII fails the test.

The values are generated per run from a seed (random digits, valid Luhn / IBAN checksums, an invented
surname), so a hit cannot come from anything but this test's input; the seed is in every failure message and
`FORGE_PRIVACY_SEED=<seed>` replays a run. The training/MLflow half of the chain is covered by the demo test
(test_demo_end_to_end.py::test_no_planted_pii_reaches_dataset_mlflow_or_event_log, slow).
"""

from __future__ import annotations

import json
import os
import random
from pathlib import Path

import dagster as dg
import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")


# Files that hold raw input on purpose: what was read (before the scrub) and what was dropped while reading.
RAW_BY_DESIGN = {
    "tables/vault_notes.parquet",
    "tables/conversations.parquet",
    "tables/training_examples.parquet",
    "quarantine/vault_notes.parquet",
    "quarantine/conversations.parquet",
    "quarantine/training_examples.parquet",
    "cache/vault_notes.json",
}
RAW_FOLDERS = ("interactions/",)  # the server's interaction logs are input too (this test writes one there)


def _luhn_card(rng: random.Random) -> str:
    digits = [4] + [rng.randrange(10) for _ in range(14)]
    total = 0
    for i, d in enumerate(reversed(digits)):
        d = d * 2 if i % 2 == 0 else d
        total += d - 9 if d > 9 else d
    digits.append((10 - total % 10) % 10)
    s = "".join(map(str, digits))
    return " ".join(s[i : i + 4] for i in range(0, 16, 4))


def _iban(rng: random.Random) -> str:
    bban = "".join(str(rng.randrange(10)) for _ in range(18))
    check = 98 - int(bban + "131400") % 97  # "DE00" moved to the end, letters as numbers (D=13, E=14)
    s = f"DE{check:02d}{bban}"
    return " ".join(s[i : i + 4] for i in range(0, len(s), 4))


def run_seed() -> int:
    """FORGE_PRIVACY_SEED when set (to replay a failure), else a fresh one; printed so a run can be repeated."""
    seed = int(os.environ.get("FORGE_PRIVACY_SEED") or random.SystemRandom().randrange(1, 2**32))
    print(f"planted-PII seed: {seed} (replay: FORGE_PRIVACY_SEED={seed})")
    return seed


def planted_values(seed: int) -> dict[str, str]:
    rng = random.Random(seed)
    tok = "".join(rng.choice("bcdfghjkmnpqrstvwxz") for _ in range(8))
    n4 = lambda: f"{rng.randrange(10000):04d}"  # noqa: E731
    return {
        "email": f"vera.{tok}@fastmail.com",
        "email2": f"olle.{tok}@gmail.com",
        "email3": f"k.{tok}@outlook.com",
        "us_phone": f"(212) 555-{n4()}",
        "intl_phone": f"+44 20 7946 {n4()}",
        "se_phone": f"070-{rng.randrange(100, 999)} 45 {rng.randrange(10, 99)}",
        "card": _luhn_card(rng),
        "iban": _iban(rng),
        "us_address": f"{rng.randrange(1000, 9999)} Maple Street",
        "eu_address": f"Storgatan {rng.randrange(20, 99)}",
        "ip": f"10.{rng.randrange(256)}.{rng.randrange(256)}.{rng.randrange(1, 255)}",
        # a person known from a people/ tag and written in lower case in the text
        "surname": tok.capitalize(),
    }


def _needles(values: dict[str, str]) -> dict[str, bytes]:
    """The exact values, plus the forms a partial leak would take (the card's digits without spaces,
    the unique local part of each e-mail)."""
    out = {name: value.encode() for name, value in values.items()}
    out["card_digits"] = values["card"].replace(" ", "").encode()
    out["surname_lower"] = values["surname"].lower().encode()
    out["iban_compact"] = values["iban"].replace(" ", "").encode()
    for name in ("email", "email2", "email3"):
        out[f"{name}_local"] = values[name].split("@")[0].encode()
    return out


def _build_inputs(root: Path, v: dict[str, str]) -> tuple[Path, Path, Path]:
    vault, chats, interactions = root / "vault", root / "conversations", root / "data_root" / "interactions"
    for folder in (vault / "Journal", vault / "Decisions", chats, interactions):
        folder.mkdir(parents=True, exist_ok=True)
    (vault / "Journal" / "2026-03-02.md").write_text(
        f"---\ntags: [journal, reflection, people/vera-{v['surname'].lower()}]\ncreated: 2026-03-02\n"
        f"contact: {v['email2']}\n---\n# Monday\nlunch with vera {v['surname'].lower()} first, she is moving.\n"
        f"Long day. Vera wrote from {v['email']} asking me to call her back on {v['us_phone']} before Friday.\n"
        f"I finally paid the invoice with the card {v['card']} and moved the savings to {v['iban']}.\n"
        f"The new office at {v['us_address']} is quieter than I expected, which helps me focus.\n"
    )
    (vault / "Decisions" / "Moving.md").write_text(
        f"---\ntags: [decision]\ntitle: Moving closer to {v['intl_phone']}\n---\n# Moving\n## Situation\n"
        f"The flat at {v['eu_address']} is too far from work and the rent keeps climbing every year.\n"
        "## Decision\nI will look for something within cycling distance and decide by the end of the spring.\n"
    )
    (vault / "Broken.md").write_text(f"---\ntitle: [unclosed {v['email3']}\n---\nI never parse.\n")
    chat = {
        "conversation_id": "c1",
        "messages": [
            {
                "role": "user",
                "content": f"Can you draft a note to {v['email3']} about the server at {v['ip']} being down?",
            },
            {
                "role": "assistant",
                "content": f"Sure. I will say the server at {v['ip']} is down and that you can be "
                f"reached on {v['se_phone']} for the rest of the afternoon.",
            },
        ],
    }
    (chats / "chats.jsonl").write_text(json.dumps(chat) + "\n" + f'{{"broken": "{v["email"]}"\n')
    export = [
        {
            "conversation_id": "g1",
            "current_node": "a",
            "create_time": 1767225600,
            "mapping": {
                "u": {
                    "parent": None,
                    "message": {
                        "author": {"role": "user"},
                        "content": {
                            "content_type": "text",
                            "parts": [
                                f"What should I tell the bank about the transfer to {v['iban']} that bounced last week?"
                            ],
                        },
                    },
                },
                "a": {
                    "parent": "u",
                    "message": {
                        "author": {"role": "assistant"},
                        "content": {
                            "content_type": "text",
                            "parts": [
                                f"Tell them the transfer to {v['iban']} bounced and ask them to call you on {v['intl_phone']} tomorrow."
                            ],
                        },
                    },
                },
            },
        }
    ]
    (chats / "export").mkdir()
    (chats / "export" / "conversations.json").write_text(json.dumps(export))
    records = [
        {
            "interaction_id": "i1",
            "received_at": "2026-11-20T10:00:00Z",
            "rating": "up",
            "feedback": f"great, forward it to {v['email2']}",
            "model_version": "v0001",
            "corrected_reply": f"Write to {v['email2']} and mention {v['us_address']} as the meeting place for Friday.",
            "messages": [
                {"role": "user", "content": "Where should we meet on Friday for the quarterly planning session?"},
                {"role": "assistant", "content": "At the office."},
            ],
        },
        {
            "interaction_id": "i2",
            "received_at": "2026-11-20T11:00:00Z",
            "rating": "down",
            "model_version": "v0001",
            "messages": [
                {"role": "user", "content": f"Text {v['us_phone']} please"},
                {"role": "assistant", "content": f"Texting {v['us_phone']} now."},
            ],
        },
    ]
    (interactions / "2026-11-20.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    return vault, chats, interactions


@pytest.mark.slow  # spaCy + MiniLM load and a full prepare run: 20-40 s on two cores
def test_no_planted_pii_gets_past_the_scrub(tmp_path, monkeypatch, capfd):
    from forge_pipeline.definitions import group_definitions
    from forge_pipeline.defs.prepare.resources import prepare_resources
    from forge_pipeline.defs.resources import shared_resources

    seed = run_seed()
    values = planted_values(seed)
    needles = _needles(values)
    vault, chats, _ = _build_inputs(tmp_path, values)
    root, home = tmp_path / "data_root", tmp_path / "dagster_home"
    monkeypatch.setenv("FORGE_VAULT_DIR", str(vault))
    monkeypatch.setenv("FORGE_CONVERSATIONS_DIR", str(chats))
    chain = group_definitions("ingest", "prepare", "curate", "catalog")
    assets, checks = list(chain.assets), list(chain.asset_checks)
    home.mkdir()
    with dg.DagsterInstance.local_temp(tempdir=str(home)) as instance:
        result = dg.materialize(
            assets + checks,
            resources=shared_resources(str(root)) | prepare_resources(),
            instance=instance,
            selection=dg.AssetSelection.assets("dataset_version").upstream(),
        )
        assert result.success
        assert all(c.passed for c in result.get_asset_check_evaluations())
        # The event log as Dagster serves it (metadata, previews, check results), not only its files.
        records = instance.get_event_records(
            dg.EventRecordsFilter(event_type=dg.DagsterEventType.ASSET_MATERIALIZATION)
        )
        event_text = "\n".join(dg.serialize_value(r.event_log_entry) for r in records)
    printed = capfd.readouterr()

    # The scrub really had something to do: the planted values were read, then replaced.
    version = json.loads((root / "catalog" / "catalog.json").read_text())["versions"][-1]
    dataset_text = "".join(((root / version["path"]) / f"{s}.jsonl").read_text() for s in ("train", "validation"))
    assert version["counts"]["train"] + version["counts"]["validation"] >= 4
    assert "<EMAIL_ADDRESS_" in dataset_text and "<IBAN_CODE_" in dataset_text and "<CREDIT_CARD_" in dataset_text
    raw_table = (root / "tables" / "training_examples.parquet").read_bytes()
    import polars as pl

    raw_text = str(pl.read_parquet(root / "tables" / "training_examples.parquet")["messages"].to_list())
    assert values["card"] in raw_text and values["email"] in raw_text and raw_table

    leaks, searched, raw_hits = [], 0, set()
    for base in (root, home):
        for path in sorted(p for p in base.rglob("*") if p.is_file()):
            rel = path.relative_to(root).as_posix() if base == root else None
            data = _readable_bytes(path)
            searched += 1
            hits = [name for name, needle in needles.items() if needle in data]
            if hits and rel is not None and (rel in RAW_BY_DESIGN or rel.startswith(RAW_FOLDERS)):
                raw_hits.add(rel)
            elif hits:
                leaks.append((str(path), hits))
    for name, needle in needles.items():
        if needle.decode() in event_text or needle.decode() in printed.out + printed.err:
            leaks.append(("dagster event log / console", [name]))
    assert not leaks, f"planted PII outside the raw input files (seed {seed}): {leaks}"
    assert searched > 20 and any(p.name.endswith(".db") for p in home.rglob("*"))
    # The test searched where the values really are: the raw files do hold them.
    assert {"tables/training_examples.parquet", "quarantine/conversations.parquet"} <= raw_hits


def _readable_bytes(path: Path) -> bytes:
    """File bytes, plus the decoded text of Parquet files (compressed pages would hide a value from a byte grep)."""
    data = path.read_bytes()
    if path.suffix == ".parquet":
        import polars as pl

        data += pl.read_parquet(path).write_ndjson().encode()
    return data


def test_values_quoted_in_quarantine_details_stay_out_of_the_event_log(tmp_path, monkeypatch):
    """Ingest runs before the scrub and its quarantine details may quote the bad value (a speaker name used as
    a role, a phone number in a timestamp field). The quarantine file keeps them (raw input, by design); the
    Dagster event log's dropped_preview must not. Bug: it showed the detail verbatim."""
    import polars as pl

    from forge_pipeline.definitions import group_definitions
    from forge_pipeline.defs.resources import shared_resources

    seed = run_seed()
    values = planted_values(seed)
    name = "Vera " + values["email"].split("@")[0].split(".")[1].capitalize()  # a unique "speaker name"
    chats, vault = tmp_path / "conversations", tmp_path / "vault"
    chats.mkdir()
    vault.mkdir()
    ok = [{"role": "user", "content": "hello there"}, {"role": "assistant", "content": "hi, how can I help?"}]
    lines = [
        {"conversation_id": "a", "messages": [{"role": name, "content": "hi"}, ok[1]]},
        {"conversation_id": "b", "messages": ok, "created_at": values["us_phone"]},
        {"conversation_id": "c", "messages": ok, "created_at": values["email"]},
    ]
    (chats / "chats.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines))
    root, home = tmp_path / "data_root", tmp_path / "dagster_home"
    home.mkdir()
    monkeypatch.setenv("FORGE_VAULT_DIR", str(vault))
    monkeypatch.setenv("FORGE_CONVERSATIONS_DIR", str(chats))
    with dg.DagsterInstance.local_temp(tempdir=str(home)) as instance:
        result = dg.materialize(
            list(group_definitions("ingest").assets), resources=shared_resources(str(root)), instance=instance
        )
        assert result.success
        table = result.asset_materializations_for_node("conversations")[0].metadata["dropped_preview"]
        preview = "\n".join(" | ".join(str(v) for v in r.data.values()) for r in table.records)
    assert "unknown_role" in preview and preview.count("bad_timestamp") == 2
    stored = pl.read_parquet(root / "quarantine" / "conversations.parquet")
    assert name in " ".join(stored["detail"])  # the person still sees what was wrong, locally
    for secret in (name, values["us_phone"], values["email"]):
        assert secret not in preview, seed
        for path in home.rglob("*"):
            if path.is_file():
                assert secret.encode() not in path.read_bytes(), (secret, path, seed)
