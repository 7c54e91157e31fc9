"""Span rules: overlapping detections merge to their union, a name never runs into a structured value."""

from __future__ import annotations

import re

from forge_pipeline.prepare.pii.detection import DENY_ENTITY, NER_ENTITIES, Detection

# When two detections of equal length overlap, the more specific type names the union.
TYPE_PRIORITY = [
    "IBAN_CODE",
    "CREDIT_CARD",
    "EMAIL_ADDRESS",
    "IP_ADDRESS",
    "US_SSN",
    "PHONE_NUMBER",
    "STREET_ADDRESS",
    "URL",
    DENY_ENTITY,
    "PERSON",
]


def _rank(d: Detection) -> tuple:
    priority = TYPE_PRIORITY.index(d.entity_type) if d.entity_type in TYPE_PRIORITY else len(TYPE_PRIORITY) - 1
    return (d.end - d.start, -priority, d.score)


def trim_names(text: str, dets: list[Detection]) -> list[Detection]:
    """A name span that runs into a structured value ("Kwame Achterberg - +39 06 3295 2183" found as one
    PERSON) keeps only its longest piece outside the value, so each value keeps its own type."""
    values = [d for d in dets if d.entity_type not in NER_ENTITIES and d.entity_type != DENY_ENTITY]
    out = []
    for d in dets:
        cuts = sorted((v.start, v.end) for v in values if v.start < d.end and v.end > d.start)
        if d.entity_type not in NER_ENTITIES or not cuts:
            out.append(d)
            continue
        pieces, pos = [], d.start
        for s, e in cuts:
            pieces.append((pos, max(pos, s)))
            pos = max(pos, e)
        pieces.append((pos, d.end))
        start, end = max(pieces, key=lambda p: p[1] - p[0])
        while start < end and not text[start].isalnum():
            start += 1
        while end > start and not text[end - 1].isalnum():
            end -= 1
        if any(c.isalpha() for c in text[start:end]):
            out.append(Detection(d.entity_type, start, end, d.score))
    return out


def merge_spans(dets: list[Detection]) -> list[Detection]:
    """Overlapping detections become one span covering their union, so no part of any value survives
    ("Lars Eriksson 070-123 45 67" found as a name and, overlapping, a phone is replaced whole). The union
    takes the type of its longest member (ties: the more specific type, then the higher score)."""
    merged: list[tuple[Detection, Detection]] = []  # (union, the member that names its type)
    for d in sorted(dets, key=lambda d: (d.start, -d.end)):
        if merged and d.start < merged[-1][0].end:
            union, lead = merged[-1]
            lead = d if _rank(d) > _rank(lead) else lead
            merged[-1] = (
                Detection(lead.entity_type, union.start, max(union.end, d.end), max(union.score, d.score)),
                lead,
            )
        else:
            merged.append((Detection(d.entity_type, d.start, d.end, d.score), d))
    return [Detection(lead.entity_type, u.start, u.end, u.score) for u, lead in merged]


# Structure a placeholder never crosses: a line break, a list marker, a table cell, the brackets of a link, the
# " / " between headings of a prompt ("Apple Journal / On Mac").
_STRUCTURE = re.compile(r"\n|\||\]\(|[\[\]<>]|\s+(?:and|&|w/|/)\s+|[,;]\s*", re.IGNORECASE)
_LEAD = re.compile(r"^(?:[\s>#*+\-]|\d+[.)]\s)+")  # list markers, headings, quotes, emphasis at a piece's start
_URL_SPAN = re.compile(
    r"(?:https?://|www\.)[^\s<>)\]]+|\]\([^)\s]*\)|<[^>\s]+@[^>\s]+>|</?[a-zA-Z][^<>\n]*>"
    r"|\b(?:[a-z0-9-]+\.)+(?:com|org|net|io|md|dev|app|co|ai|gg|me|edu|gov|uk|de|fr|blog|so)\b(?:/[^\s)\]]*)?"
)
# A "phone number" that is a date or a time ("2023-01-15 10:30", "20230115 1030") or an id in a URL is neither.
_DATE_LIKE = re.compile(r"^\s*(?:\d{4}[-/.]\d{1,2}[-/.]\d{1,2}|\d{1,2}[-/.]\d{1,2}[-/.]\d{4})\b|\d{1,2}:\d{2}")
# Role addresses of products and services name no person ("support@", "help@", "noreply@").
ROLE_MAILBOXES = {
    "support",
    "help",
    "info",
    "contact",
    "hello",
    "sales",
    "team",
    "noreply",
    "no-reply",
    "admin",
    "feedback",
    "press",
    "security",
    "privacy",
    "billing",
    "legal",
    "jobs",
    "careers",
    "abuse",
    "webmaster",
    "postmaster",
    "hi",
    "office",
    "community",
}


def url_regions(text: str) -> list[tuple[int, int]]:
    """(start, end) of URLs (also bare domains: "developer.mozilla.org/..."), Markdown link targets `](...)`,
    <address> links and HTML tags in `text`."""
    if "." not in text and "<" not in text:
        return []
    return [(m.start(), m.end()) for m in _URL_SPAN.finditer(text)]


def fit_to_structure(text: str, dets: list[Detection]) -> list[Detection]:
    """Detections cut to the structure of Markdown, before placeholders are chosen:
    - a name (NER type) never spans a line break, a list item, a table cell, a link's brackets, or a list
      of names ("Background and Wallpaper\\n- Font" was one <PERSON_n>): it is cut there, and each piece
      that still holds letters (and starts with a capital when the span did) is a detection of its own;
    - no piece of an NER type inside a URL or a link target is a name (`[Send to Kindle](.../sendtokindle)`);
    - a phone number that reads as a date or time, or sits inside a URL (an app-store id), is not one;
    - an e-mail to a role mailbox (support@, noreply@ ...) names no person."""
    urls = url_regions(text)
    out = []
    for d in dets:
        span = text[d.start : d.end]
        if d.entity_type == "PHONE_NUMBER":
            if _DATE_LIKE.search(span) or any(s <= d.start and d.end <= e for s, e in urls):
                continue
            out.append(d)
            continue
        if d.entity_type == "EMAIL_ADDRESS":
            if span.split("@", 1)[0].casefold() in ROLE_MAILBOXES:
                continue
            out.append(d)
            continue
        if d.entity_type not in NER_ENTITIES:
            out.append(d)
            continue
        capital = span[:1].isupper()
        pos = d.start
        for cut in [*(d.start + m.start() for m in _STRUCTURE.finditer(span)), d.end]:
            piece_end = cut
            start, end = pos, piece_end
            lead = _LEAD.match(text, start, end)
            if lead:
                start = lead.end()
            while start < end and not text[start].isalnum():
                start += 1
            while end > start and not (text[end - 1].isalnum() or text[end - 1] in "'’"):
                end -= 1
            piece = text[start:end]
            in_url = any(s < end and start < e for s, e in urls)
            if any(c.isalpha() for c in piece) and (not capital or piece[:1].isupper()) and not in_url:
                out.append(Detection(d.entity_type, start, end, d.score))
            match = _STRUCTURE.match(text, cut) if cut < d.end else None
            pos = match.end() if match else cut
    return out
