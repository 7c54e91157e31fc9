"""Privacy on a vault written the way people write: planted names and local-format values never get past the
scrub, and ordinary words that look like names stay.

The vault below resembles real notes in their forms: a journal in lower case, first names alone, a name
mentioned once in the whole vault, people of many origins, a people/ tag and a person frontmatter field, phone
numbers and addresses in local formats (UK, FR, DE, SE, IN, US), and tools and places whose names a NER takes
for people (Docker, Kafka, China, Zettelkasten). The real chain runs once (module fixture) in a Dagster instance
with on-disk SQLite storage up to the embedding index (ingest -> presidio scrub -> filter -> dedup -> curate ->
catalog -> MiniLM/FAISS index); then every file under the data root and the Dagster home (tables, quarantine,
catalog JSONL and HF arrow files, embeddings/<v>/chunks.parquet, the event log) is searched.

Only the files that hold the person's raw input on purpose may contain the values (ingest's tables, their
quarantine and parse cache: RAW_BY_DESIGN). Each planted form has its own needle, so a failure names the form.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import dagster as dg
import pytest

from forge_pipeline_tests.test_privacy_chain import RAW_BY_DESIGN, _readable_bytes

os.environ.setdefault("HF_HUB_OFFLINE", "1")

PROSE = (
    "I want to write this down properly because last time I forgot half of it and had to reconstruct the "
    "whole thing from chat logs, which took an afternoon I did not have."
)

# form -> the planted value (each one appears in the vault in that form only)
NAMES = {
    "lower_case_first_name": "ingrid",
    "lower_case_first_name_2": "nadia",
    "first_name_alone": "Oluwaseun",
    "mentioned_once_full_name": "Tomasz Wiśniewski",
    "full_name_yoruba": "Adebayo Okonkwo",
    "full_name_vietnamese": "Nguyễn Thị Lan",
    "full_name_irish": "Siobhán Gallagher",
    "full_name_indian": "Priyanka Raghunathan",
    "people_tag": "marguerite-delacroix",
    "frontmatter_attendee": "Henrik Lindqvist",
}
STRUCTURED = {
    "uk_mobile": "07911 123456",
    "fr_mobile": "06 12 34 56 78",
    "de_landline": "030 901820",
    "se_mobile": "070-123 45 67",
    "in_mobile": "+91 98765 43210",
    "us_phone": "(415) 555-0172",
    "fr_address": "12 rue des Lilas, 75011 Paris",
    "de_address": "Hauptstraße 5, 10115 Berlin",
    "uk_address": "14 Mill Lane, Oxford OX2 6HT",
    "email": "lan.nguyen.home@fastmail.com",
}
# ordinary words a NER takes for people: they are the notes' subject and must reach the dataset unchanged
ORDINARY = ["Docker", "Kafka", "China", "Zettelkasten"]

NOTES = {
    "Journal/2026-03-02.md": (
        "---\ntags: [journal]\ncreated: 2026-03-02\n---\n"
        "# monday\n\n"
        "coffee with ingrid before standup. she thinks the Kafka consumer lag is a config problem and not the "
        "brokers, and honestly i think she's right. nadia disagreed but she always does that on mondays.\n"
        f"{PROSE}\n"
    ),
    "Journal/2026-03-03.md": (
        "---\ntags: [journal]\n---\n"
        "# tuesday\n\n"
        "Oluwaseun called about the flat again. He wants an answer by Friday and I still have not decided. "
        f"Rang him back on {STRUCTURED['uk_mobile']} but got voicemail. {PROSE}\n\n"
        "## travel\n\n"
        "Bumped into Tomasz Wiśniewski at the station, first time in years. "
        "He is moving to China for the factory job in the autumn and sounded happy about it.\n"
    ),
    "Meetings/Planning.md": (
        "---\nattendees: [Henrik Lindqvist]\ntags: [meeting, people/marguerite-delacroix]\n---\n"
        "# Planning the staging move\n\n"
        "We agreed Docker compose is enough for staging; Kubernetes can wait until the second quarter. "
        "Henrik will write the migration plan and Marguerite reviews it before the freeze. "
        f"Adebayo Okonkwo from the platform team joins next week. {PROSE}\n"
    ),
    "Contacts/Addresses.md": (
        "---\ntags: [admin]\n---\n"
        "# Addresses for the wedding invitations\n\n"
        f"- Nguyễn Thị Lan: {STRUCTURED['fr_address']}, mobile {STRUCTURED['fr_mobile']}, "
        f"mail {STRUCTURED['email']}\n"
        f"- Siobhán Gallagher: {STRUCTURED['uk_address']}\n"
        f"- Priyanka Raghunathan: call {STRUCTURED['in_mobile']} (she is in Chennai until June)\n"
        f"- the Berlin cousins: {STRUCTURED['de_address']}, Festnetz {STRUCTURED['de_landline']}\n"
        f"- landlord in Uppsala: {STRUCTURED['se_mobile']}; the agency in Oakland: {STRUCTURED['us_phone']}\n\n"
        f"{PROSE}\n"
    ),
    "Zettelkasten/Method.md": (
        "---\ntags: [pkm]\n---\n"
        "# How my Zettelkasten works\n\n"
        "Every note in the Zettelkasten gets one idea and a link to where it came from. Kafka's diaries were "
        "the first thing I took notes on this way, then a course on Docker networking. The point is that a "
        "note must stand on its own when I find it again in a year, without the context I had when I wrote "
        "it, and that linking is worth more than filing.\n"
    ),
}


def _needle(value: str) -> re.Pattern:
    """The value as a whole word in any letter case, as stored: UTF-8 or JSON-escaped (`Nguy\\u1ec5n`, what
    Dagster's event log and some JSON writers store), with any separator between its parts
    ("marguerite-delacroix" also as "Marguerite Delacroix"); a JSON `\\n` before it still counts as a word break."""
    forms = []
    for encode in (lambda w: w.encode("utf-8"), lambda w: json.dumps(w)[1:-1].encode("ascii")):
        parts = [re.escape(encode(p)) for p in re.split(r"[\s-]+", value)]
        forms.append(rb"[\s_-]+".join(parts))
    alternatives = b"|".join(dict.fromkeys(forms))
    return re.compile(rb"(?:(?<![A-Za-z0-9])|(?<=\\[nrt]))(?:" + alternatives + rb")(?![A-Za-z0-9])", re.IGNORECASE)


def _needles() -> dict[str, re.Pattern]:
    out = {form: _needle(v) for form, v in {**NAMES, **STRUCTURED}.items()}
    for form, value in NAMES.items():  # each part of a full name alone is a leak too
        words = re.split(r"[\s-]+", value)
        if len(words) > 1:
            out |= {f"{form}:{w}": _needle(w) for w in words if len(w) > 3}
    out["email_local"] = _needle(STRUCTURED["email"].split("@")[0])
    return out


@pytest.fixture(scope="module")
def planted_run(tmp_path_factory):
    """The chain up to embedding_index over the planted vault, once for the module."""
    from forge_pipeline.definitions import group_definitions
    from forge_pipeline.defs.prepare.resources import prepare_resources
    from forge_pipeline.defs.resources import shared_resources

    base = tmp_path_factory.mktemp("planted")
    vault, chats, root, home = base / "vault", base / "conversations", base / "data_root", base / "dagster_home"
    for rel, text in NOTES.items():
        (vault / rel).parent.mkdir(parents=True, exist_ok=True)
        (vault / rel).write_text(text, encoding="utf-8")
    chats.mkdir()
    home.mkdir()
    chain = group_definitions("ingest", "prepare", "curate", "catalog")
    assets, checks = list(chain.assets), list(chain.asset_checks)
    with pytest.MonkeyPatch.context() as env:
        env.setenv("FORGE_VAULT_DIR", str(vault))
        env.setenv("FORGE_CONVERSATIONS_DIR", str(chats))
        env.setenv("FORGE_INGEST__MIN_SECTION_WORDS", "5")
        with dg.DagsterInstance.local_temp(tempdir=str(home)) as instance:
            result = dg.materialize(
                assets + checks,
                resources=shared_resources(str(root)) | prepare_resources(),
                instance=instance,
                selection=dg.AssetSelection.assets("embedding_index").upstream(),
                raise_on_error=False,
            )
            # the whole run's event log as Dagster serves it (materialization metadata, previews, check results)
            event_text = "\n".join(dg.serialize_value(entry) for entry in instance.all_logs(result.run_id))
    evaluations = {e.check_name: e for e in result.get_asset_check_evaluations()}
    return {"root": root, "home": home, "result": result, "event_text": event_text, "checks": evaluations}


def _files_after_the_scrub(run) -> list[tuple[str, bytes]]:
    out = []
    for base in (run["root"], run["home"]):
        for path in sorted(p for p in base.rglob("*") if p.is_file()):
            rel = path.relative_to(run["root"]).as_posix() if base == run["root"] else f"DAGSTER_HOME/{path.name}"
            if base == run["root"] and rel in RAW_BY_DESIGN:
                continue
            out.append((rel, _readable_bytes(path)))
    return out


def _leaks(run, needles: dict[str, re.Pattern]) -> dict[str, list[str]]:
    leaks: dict[str, list[str]] = {}
    for rel, data in _files_after_the_scrub(run):
        for form, needle in needles.items():
            if needle.search(data):
                leaks.setdefault(form, []).append(rel)
    for form, needle in needles.items():
        if needle.search(run["event_text"].encode("utf-8")):
            leaks.setdefault(form, []).append("event log (as Dagster serves it)")
    return leaks


def _dataset_text(root: Path) -> str:
    version = json.loads((root / "catalog" / "catalog.json").read_text())["versions"][-1]
    return "".join((root / version["path"] / f"{s}.jsonl").read_text(encoding="utf-8") for s in ("train", "validation"))


@pytest.mark.slow  # spaCy + MiniLM load and the chain to the embedding index: ~30-50 s on two cores
def test_the_chain_reaches_the_embedding_index_and_searches_where_values_are(planted_run):
    result, root = planted_run["result"], planted_run["root"]
    assert result.success, [e.event_specific_data for e in result.all_events if e.is_step_failure]
    assert (root / "embeddings").is_dir() and list((root / "embeddings").rglob("chunks.parquet"))
    assert list((root / "catalog").rglob("*.arrow")), "the HF dataset files are among the searched files"
    # the raw table holds every planted value: the search below looks for what is really there
    raw = _readable_bytes(root / "tables" / "training_examples.parquet")
    missing = [f for f, n in _needles().items() if ":" not in f and not n.search(raw)]
    assert not missing, f"planted values that never reached training_examples (fix the vault): {missing}"


@pytest.mark.slow
def test_no_planted_structured_value_in_any_file_after_the_scrub(planted_run):
    needles = {f: n for f, n in _needles().items() if f in STRUCTURED or f == "email_local"}
    assert not _leaks(planted_run, needles)


@pytest.mark.slow
def test_no_planted_name_in_any_file_after_the_scrub(planted_run):
    needles = {f: n for f, n in _needles().items() if f.split(":")[0] in NAMES}
    leaks = _leaks(planted_run, needles)
    assert not leaks, f"planted names outside the raw input files, by form: {leaks}"


@pytest.mark.slow
def test_ordinary_words_that_look_like_names_survive_the_scrub(planted_run):
    text = _dataset_text(planted_run["root"])
    lost = [w for w in ORDINARY if not re.search(rf"\b{w}\b", text)]
    assert not lost, f"ordinary words replaced by the scrub: {lost}"


@pytest.mark.slow
def test_the_residual_check_shows_values_only_masked(planted_run):
    """Whatever the check found, its result in the event log names no planted value in full."""
    evaluation = planted_run["checks"]["no_residual_pii"]
    shown = (evaluation.description or "") + json.dumps(
        {k: str(v.value) for k, v in evaluation.metadata.items()}, ensure_ascii=False
    )
    assert not [f for f, n in _needles().items() if n.search(shown.encode("utf-8"))]
