"""The language rule shared by ingest (which detects each note's and conversation's language once) and prepare
(which holds back examples outside `prepare.filter.languages` before the English PII scrub). It lives here, in
neither stage, so ingest never imports prepare."""

from __future__ import annotations

import re

MIN_LANGUAGE_CHARS = 40
ENGLISH_STOPWORD_SHARE = 0.25
# Letters no alphabet but Vietnamese has (horn and hook-above vowels, dot-below vowels, đ). langdetect reads a
# Vietnamese technical note as English when its English terms outnumber the short Vietnamese syllables (three of
# a public mixed-language vault's notes: "Tải từ Docker Hub", "Tự tạo Dockerfile"), and the English NER then calls
# Vietnamese words people.
_VIETNAMESE_LETTERS = re.compile(r"[ơưđạảấầẩẫậắằẳẵặẹẻẽếềểễệỉịọỏốồổỗộớờởỡợụủứừửữựỳỵỷỹ]")
VIETNAMESE_WORD_SHARE = 0.1


def detect_language(text: str) -> str | None:
    """The text's language, or None when there is too little text to judge.

    English when at least ENGLISH_STOPWORD_SHARE of the words are English stop words (cheap: English prose has
    30-50%; German/Dutch/French/Spanish/Swedish/Indonesian prose mostly 0-8%, but a short German sentence
    reached 13% on words like "in" and "am", hence the margin); Vietnamese when VIETNAMESE_WORD_SHARE of the
    words hold a letter only Vietnamese writes; otherwise langdetect decides, which costs milliseconds per text."""
    letters = sum(ch.isalpha() for ch in text)
    if letters < MIN_LANGUAGE_CHARS:
        return None
    from spacy.lang.en.stop_words import STOP_WORDS

    words = re.findall(r"[^\W\d_]+", text.lower())
    if words and sum(w in STOP_WORDS for w in words) / len(words) >= ENGLISH_STOPWORD_SHARE:
        return "en"
    if words and sum(bool(_VIETNAMESE_LETTERS.search(w)) for w in words) / len(words) >= VIETNAMESE_WORD_SHARE:
        return "vi"
    from langdetect import DetectorFactory, detect
    from langdetect.lang_detect_exception import LangDetectException

    DetectorFactory.seed = 0  # langdetect is random by default; a fixed seed makes runs reproducible
    try:
        return detect(text)
    except LangDetectException:
        return None


def held_back_language(language: str | None, languages: list[str]) -> bool:
    """The gate's rule for one detected language: held back when it is known and not in `languages` (an
    empty list lets everything through, as does a text too short to judge)."""
    return bool(languages) and language is not None and language not in languages
