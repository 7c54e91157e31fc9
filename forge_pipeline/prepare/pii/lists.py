"""Names by their place in a list of people.

A Markdown list whose items share a shape and name a person at the same place in most of them ("- liam ([Liam
Cain](...))", "- smilorent, Silviu Lorenț (Romanian)") names a person at that place in its other items too
("- mediapathic ([Steen Comer](...))", "- taksas, 中山 拓海 (Japanese)"). A reader sees it at once; the NER and
the name lists miss unusual spellings ("Rebbecca"), surnames that are dictionary words ("Steen Comer") and
scripts without capitals. Credits, team pages, reading lists of authors and attendee lists take this shape.
"""

from __future__ import annotations

import re

_ITEM = re.compile(r"^[ \t]*(?:[-*+]|\d{1,3}[.)])[ \t]+(\S.*)$", re.MULTILINE)
# The places a list item names someone at, as (pattern, whether it starts at the item's start): the text of its
# first link, the part after "handle, ", and the item itself up to a parenthesis ("Andrea Brandi (Italian)").
_SLOTS = {
    "link": (re.compile(r"\[([^\]\n]+)\]\("), False),
    "after comma": (re.compile(r"[^,(\[\n]+,[ \t]*([^,(\[\n]+?)[ \t]*(?:\(|$)"), True),
    "lead": (re.compile(r"([^,(\[\n]+?)[ \t]*(?:\(|$)"), True),
}
_PARTICLES = {"van", "von", "de", "da", "del", "der", "den", "di", "du", "la", "le", "bin", "ibn", "ten", "y"}
# A list counts as a list of people when it has at least MIN_PLACES name-shaped places and at least MIN_PEOPLE of
# them, and MIN_SHARE of them, already hold a person found by other means (a team page's "Alumni": three names,
# two of them found).
MIN_PLACES = 3
MIN_PEOPLE = 2
MIN_SHARE = 2 / 3


def list_sibling_names(text: str, people: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """(start, end) of the name-shaped places in `text`'s lists of people that hold no person yet; `people` are
    the spans already found to be persons."""
    found: list[tuple[int, int]] = []
    for block in _list_blocks(text):
        for slot in _SLOTS.values():
            places = [
                p for p in (_slot_span(text, item, slot) for item in block) if p and _name_shaped(text[p[0] : p[1]])
            ]
            named = [p for p in places if any(s < p[1] and p[0] < e for s, e in people)]
            if len(places) >= MIN_PLACES and len(named) >= MIN_PEOPLE and len(named) >= MIN_SHARE * len(places):
                found.extend(p for p in places if p not in named)
    return sorted(set(found))


def _list_blocks(text: str) -> list[list[tuple[int, int]]]:
    """Runs of consecutive list items, each item as the (start, end) of its text after the bullet."""
    blocks: list[list[tuple[int, int]]] = []
    previous_end = -2
    for m in _ITEM.finditer(text):
        if (
            blocks
            and text[previous_end : m.start()].strip("\r\n") == ""
            and text.count("\n", previous_end, m.start()) <= 1
        ):
            blocks[-1].append(m.span(1))
        else:
            blocks.append([m.span(1)])
        previous_end = m.end()
    return [b for b in blocks if len(b) >= MIN_PLACES]


def _slot_span(text: str, item: tuple[int, int], slot: tuple[re.Pattern, bool]) -> tuple[int, int] | None:
    pattern, from_start = slot
    m = (pattern.match if from_start else pattern.search)(text, item[0], item[1])
    if m is None:
        return None
    start, end = m.span(1)
    value = text[start:end]
    return start + len(value) - len(value.lstrip()), end - len(value) + len(value.rstrip())


def _name_shaped(value: str) -> bool:
    """Two to four words, each capitalised or in a script without capitals ("中山 拓海"), particles between
    them allowed, no digits: the shape of a full name."""
    words = value.split()
    if not 2 <= len(words) <= 4 or len(value) > 48 or any(c.isdigit() for c in value):
        return False
    for k, word in enumerate(words):
        head = word.lstrip("'’")[:1]
        if k and 0 < k < len(words) - 1 and word in _PARTICLES:
            continue
        if not head.isalpha() or head.islower():  # upper case, or a letter with no case at all
            return False
    return True
