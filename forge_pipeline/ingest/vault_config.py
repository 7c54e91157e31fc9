"""What a vault says about itself in `.obsidian/`: read before guessing.

- Templates folder: core Templates (`templates.json` "folder") and Templater
  (`plugins/templater-obsidian/data.json` "templates_folder"). Notes there are scaffolding (`{{date}}`,
  `<% tp.file.cursor() %>`), not the person's writing: the vault reader skips them.
- Daily notes: folder and file-name format (`daily-notes.json` "folder"/"format", or the periodic-notes
  plugin's "daily" block), a moment.js format such as `DD-MM-YYYY - dddd` (default `YYYY-MM-DD`). The journal
  strategy recognises entries by it.
- Flashcards: obsidian-spaced-repetition (`plugins/obsidian-spaced-repetition/data.json`): the tags that mark
  a note as holding cards (default `#flashcards`) and the separators (`::`, `:::`, `?`, `??`).

A missing file means the app's default. A file that cannot be read (bad JSON, wrong types) also gives the
default, and a line in `problems` says which file and what was wrong, so the run never fails on a plugin's
settings file and the person can still see that it was not used.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

DEFAULT_DAILY_FORMAT = "YYYY-MM-DD"
_TEMPLATER = "plugins/templater-obsidian/data.json"
_SPACED_REPETITION = "plugins/obsidian-spaced-repetition/data.json"
_PERIODIC_NOTES = "plugins/periodic-notes/data.json"


@dataclass
class FlashcardSyntax:
    """obsidian-spaced-repetition's card syntax (its defaults)."""

    tags: list[str] = field(default_factory=lambda: ["flashcards"])  # without '#'; nested children count too
    single: str = "::"
    single_reversed: str = ":::"
    multi: str = "?"
    multi_reversed: str = "??"

    def marks(self, tags: list[str]) -> bool:
        """Whether a note with `tags` holds cards (a deck tag such as `flashcards/spanish` counts)."""
        return any(t == w or t.startswith(w + "/") for t in tags for w in self.tags)


@dataclass
class VaultConfig:
    template_folders: list[str] = field(default_factory=list)
    daily_folder: str = ""
    daily_format: str = DEFAULT_DAILY_FORMAT
    flashcards: FlashcardSyntax = field(default_factory=FlashcardSyntax)
    problems: list[str] = field(default_factory=list)  # config files that could not be used, and why

    def is_template(self, rel_path: str) -> bool:
        return any(rel_path == f or rel_path.startswith(f + "/") for f in self.template_folders)

    def summary(self) -> dict:
        """JSON-able, for Dagster metadata and check-inputs."""
        return {
            "template_folders": self.template_folders,
            "daily_folder": self.daily_folder,
            "daily_format": self.daily_format,
            "flashcard_tags": self.flashcards.tags,
            "problems": self.problems,
        }


def _load(config_dir: Path, rel: str, problems: list[str]) -> dict:
    path = config_dir / rel
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text("utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as err:
        problems.append(f".obsidian/{rel}: cannot be read ({err}); using the default")
        return {}
    if not isinstance(data, dict):
        problems.append(f".obsidian/{rel}: expected a JSON object, found {type(data).__name__}; using the default")
        return {}
    return data


def _text(data: dict, key: str, rel: str, problems: list[str]) -> str:
    value = data.get(key)
    if value is None:
        return ""
    if not isinstance(value, str):
        problems.append(f".obsidian/{rel}: '{key}' should be text, found {type(value).__name__}; ignored")
        return ""
    return value.strip()


def _folder(value: str) -> str:
    return value.strip().strip("/").removesuffix(".md")


def read_vault_config(vault: Path) -> VaultConfig:
    """The vault's own settings (see the module docstring); defaults where a file is missing or broken."""
    config_dir = Path(vault) / ".obsidian"
    config = VaultConfig()
    problems = config.problems
    templates = _load(config_dir, "templates.json", problems)
    templater = _load(config_dir, _TEMPLATER, problems)
    folders = [
        _folder(_text(templates, "folder", "templates.json", problems)),
        _folder(_text(templater, "templates_folder", _TEMPLATER, problems)),
    ]
    config.template_folders = list(dict.fromkeys(f for f in folders if f))

    daily = _load(config_dir, "daily-notes.json", problems)
    periodic = _load(config_dir, _PERIODIC_NOTES, problems).get("daily")
    if isinstance(periodic, dict) and periodic.get("enabled", True):  # the plugin replaces the core setting
        daily, daily_rel = periodic, _PERIODIC_NOTES
    else:
        daily_rel = "daily-notes.json"
    config.daily_folder = _folder(_text(daily, "folder", daily_rel, problems))
    config.daily_format = _text(daily, "format", daily_rel, problems) or DEFAULT_DAILY_FORMAT

    cards = _load(config_dir, _SPACED_REPETITION, problems)
    syntax = config.flashcards
    tags = cards.get("flashcardTags")
    if isinstance(tags, list) and all(isinstance(t, str) for t in tags) and tags:
        syntax.tags = [t.strip().lstrip("#") for t in tags if t.strip().lstrip("#")]
    elif tags is not None:
        problems.append(f".obsidian/{_SPACED_REPETITION}: 'flashcardTags' should be a list of tags; using #flashcards")
    # The plugin renamed these keys (singlelineCardSeparator -> singleLineCardSeparator); read both.
    for attr, keys in (
        ("single", ("singleLineCardSeparator", "singlelineCardSeparator")),
        ("single_reversed", ("singleLineReversedCardSeparator", "singlelineReversedCardSeparator")),
        ("multi", ("multilineCardSeparator",)),
        ("multi_reversed", ("multilineReversedCardSeparator",)),
    ):
        for key in keys:
            if (value := _text(cards, key, _SPACED_REPETITION, problems)) != "":
                setattr(syntax, attr, value)
                break
    return config


# moment.js tokens (longest first) -> regex. Names are matched in English, the app's default locale.
_DAYS = "monday|tuesday|wednesday|thursday|friday|saturday|sunday"
_MONTHS = "january|february|march|april|may|june|july|august|september|october|november|december"
_MOMENT_TOKENS = [
    ("YYYY", r"\d{4}"),
    ("gggg", r"\d{4}"),
    ("GGGG", r"\d{4}"),
    ("YY", r"\d{2}"),
    ("MMMM", f"(?:{_MONTHS})"),
    ("MMM", r"(?:jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec)"),
    ("MM", r"\d{2}"),
    ("M", r"\d{1,2}"),
    ("DDDD", r"\d{3}"),
    ("DDD", r"\d{1,3}"),
    ("Do", r"\d{1,2}(?:st|nd|rd|th)"),
    ("DD", r"\d{2}"),
    ("D", r"\d{1,2}"),
    ("dddd", f"(?:{_DAYS})"),
    ("ddd", r"(?:mon|tue|wed|thu|fri|sat|sun)"),
    ("dd", r"(?:mo|tu|we|th|fr|sa|su)"),
    ("d", r"[0-6]"),
    ("ww", r"\d{2}"),
    ("WW", r"\d{2}"),
    ("w", r"\d{1,2}"),
    ("W", r"\d{1,2}"),
    ("Q", r"[1-4]"),
]


def moment_regex(fmt: str) -> re.Pattern:
    """A pattern that matches file names written with the moment.js format `fmt` (`[literal]` escapes kept)."""
    out, index = [], 0
    while index < len(fmt):
        if fmt[index] == "[":
            end = fmt.find("]", index)
            if end != -1:
                out.append(re.escape(fmt[index + 1 : end]))
                index = end + 1
                continue
        for token, pattern in _MOMENT_TOKENS:
            if fmt.startswith(token, index):
                out.append(pattern)
                index += len(token)
                break
        else:
            out.append(re.escape(fmt[index]))
            index += 1
    return re.compile("".join(out), re.IGNORECASE)


def daily_note_matcher(config: VaultConfig):
    """A predicate on a note's vault-relative path: whether it is a daily note by the vault's own format
    (its file name, or its path under the daily folder when the format holds folders: `YYYY/MM/YYYY-MM-DD`)."""
    full = moment_regex(config.daily_format)
    name_only = moment_regex(config.daily_format)
    folder = config.daily_folder

    def is_daily(rel_path: str) -> bool:
        stem = rel_path.removesuffix(".md")
        if "/" not in config.daily_format:
            return bool(name_only.fullmatch(stem.rsplit("/", 1)[-1]))
        # `YYYY/MM/DD`: the name alone ("24") says nothing; the path under the daily folder does
        under = stem[len(folder) + 1 :] if folder and stem.startswith(folder + "/") else stem
        return bool(full.fullmatch(under))

    return is_daily
