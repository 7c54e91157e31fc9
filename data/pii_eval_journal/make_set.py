"""Generate the journal-style PII evaluation set (messages.jsonl) deterministically.

Written for this project, independently of the detector's templates and patterns: a cast of invented people
(many origins, diacritics), each mentioned a few times across the set in the forms people really write
them (capitalised or lower-case, full or first name only, after "with/to/from/told", in note titles,
headings, wikilinks and `people/` tags); phones from 10 countries in local and international formats;
addresses and postcodes in 9 countries' formats; e-mails, IBANs, cards and IPs; and benign text full of
capitalised products, places and common words, numbers that are not phones, and code, for precision.

Each line: {"id", "kind", "text", "tags", "spans": [{"field", "index", "start", "end", "entity_type", "form"}]}
`field` is "text" (offsets into text) or "tags" (offsets into tags[index]). Run:

    python data/pii_eval_journal/make_set.py     # seeded: the output is identical on every run
"""

from __future__ import annotations

import json
import random
from pathlib import Path

SEED = 20261201
OUT = Path(__file__).with_name("messages.jsonl")

FIRST = [
    "Maren",
    "Ilse",
    "Olu",
    "Jaroslav",
    "Siobhán",
    "Chidi",
    "Aoife",
    "Mateus",
    "Zofia",
    "Björn",
    "Ngozi",
    "Kenji",
    "Ingrid",
    "Rafael",
    "Thandiwe",
    "Élodie",
    "Dariusz",
    "Nasrin",
    "Tomás",
    "Yusuf",
    "Ximena",
    "Leilani",
    "Priyanka",
    "Søren",
    "Agnieszka",
    "Matthias",
    "Aziz",
    "Farah",
    "Kwame",
    "Henrike",
    "Dmitri",
    "Ines",
    "Oluwaseun",
    "Ragnhild",
    "Mirela",
    "Benedikt",
    "Anouk",
    "Thiago",
    "Hanne",
    "Emeka",
    "Lucía",
    "Wojciech",
    "Ayumi",
    "Dagny",
    "Folasade",
    "Teodor",
    "Maëlle",
    "Njeri",
    "Cosmin",
    "Saoirse",
    "Jürgen",
    "Parisa",
    "Kalani",
    "Birgit",
    "Rohan",
    "Gunnhild",
    "Amara",
    "Stanislav",
    "Noémie",
    "Tariq",
]
LAST = [
    "Olsen",
    "Brandt",
    "Novák",
    "Okafor",
    "Ní Bhriain",
    "Adeyemi",
    "Kowalczyk",
    "Lindqvist",
    "Takahashi",
    "Haugen",
    "Ferreira",
    "Müller",
    "Dubois",
    "Petrović",
    "Mensah",
    "Castellanos",
    "Rahimi",
    "Nakamura",
    "Østergaard",
    "Wiśniewska",
    "Schäfer",
    "Achterberg",
    "Oyelaran",
    "Jovanović",
    "Iyer",
    "Mwangi",
    "Caoimhín",
    "Lefèvre",
    "Söderberg",
    "Kaur",
    "Halvorsen",
    "Zielińska",
    "Quispe",
    "Eriksson",
    "Boateng",
    "van Dijk",
    "Kovačević",
    "Álvarez",
    "Popescu",
    "Fitzgerald",
]
DOMAINS = ["posteo.de", "gmail.com", "outlook.com", "proton.me", "icloud.com", "web.de", "orange.fr", "yahoo.co.uk"]


def _digits(rng, n):
    return "".join(str(rng.randrange(10)) for _ in range(n))


def _phone(rng):
    """(text, form) for a valid phone number (libphonenumber agrees) in a country's local or international
    format; libphonenumber only checks the generator, the detector does not see this."""
    import phonenumbers

    while True:
        text, form = _phone_candidate(rng)
        region = form.split("_")[0]
        try:
            if phonenumbers.is_valid_number(phonenumbers.parse(text, region)):
                return text, form
        except phonenumbers.NumberParseException:
            pass


def _phone_candidate(rng):
    c = rng.choice(["GB", "FR", "DE", "US", "SE", "NL", "IN", "ES", "IT", "AU"])
    intl = rng.random() < 0.45
    if c == "GB":
        if rng.random() < 0.5:
            rest = f"{rng.choice('78')}{_digits(rng, 3)} {_digits(rng, 4)}"
            return (f"+44 20 {rest}" if intl else f"020 {rest}"), f"GB_{'intl' if intl else 'local'}"
        mob = f"7{rng.choice('4579')}{_digits(rng, 2)} {_digits(rng, 6)}"
        return (f"+44 {mob}" if intl else f"0{mob}"), f"GB_{'intl' if intl else 'local'}"
    if c == "FR":
        first = rng.choice(["6", "7", "1", "4"])
        groups = " ".join(_digits(rng, 2) for _ in range(4))
        if rng.random() < 0.2 and not intl:
            groups = groups.replace(" ", ".")
            return f"0{first}.{groups}", "FR_local"
        return (f"+33 {first} {groups}" if intl else f"0{first} {groups}"), f"FR_{'intl' if intl else 'local'}"
    if c == "DE":
        if rng.random() < 0.5:
            rest = f"{rng.choice('23456789')}{_digits(rng, 7)}"
            return (f"+49 30 {rest}" if intl else f"030 {rest}"), f"DE_{'intl' if intl else 'local'}"
        pre = rng.choice(["151", "160", "170", "176"])
        rest = _digits(rng, 8)
        return (f"+49 {pre} {rest}" if intl else f"0{pre} {rest}"), f"DE_{'intl' if intl else 'local'}"
    if c == "US":
        area = rng.choice(["415", "212", "646", "312", "617", "503", "206", "737"])
        ex = f"{rng.randrange(2, 10)}{_digits(rng, 2)}"
        line = _digits(rng, 4)
        if intl:
            return f"+1 {area} {ex} {line}", "US_intl"
        return rng.choice([f"({area}) {ex}-{line}", f"{area}-{ex}-{line}", f"{area}.{ex}.{line}"]), "US_local"
    if c == "SE":
        if rng.random() < 0.6:
            num = f"7{rng.choice('0236')}-{_digits(rng, 3)} {_digits(rng, 2)} {_digits(rng, 2)}"
            return (f"+46 {num.replace('-', ' ')}" if intl else f"0{num}"), f"SE_{'intl' if intl else 'local'}"
        num = f"8-{_digits(rng, 3)} {_digits(rng, 3)} {_digits(rng, 2)}"
        return (f"+46 {num.replace('-', ' ')}" if intl else f"0{num}"), f"SE_{'intl' if intl else 'local'}"
    if c == "NL":
        if rng.random() < 0.5:
            rest = f"{rng.randrange(1, 10)}{_digits(rng, 7)}"
            return (f"+31 6 {rest}" if intl else f"06-{rest}"), f"NL_{'intl' if intl else 'local'}"
        return (
            f"+31 20 {_digits(rng, 3)} {_digits(rng, 4)}"
            if intl
            else f"020 {rng.randrange(2, 10)}{_digits(rng, 2)} {_digits(rng, 4)}"
        ), f"NL_{'intl' if intl else 'local'}"
    if c == "IN":
        mob = f"{rng.choice('6789')}{_digits(rng, 4)} {_digits(rng, 5)}"
        return (f"+91 {mob}" if intl else f"0{mob}"), f"IN_{'intl' if intl else 'local'}"
    if c == "ES":
        num = f"6{_digits(rng, 2)} {_digits(rng, 3)} {_digits(rng, 3)}"
        return (f"+34 {num}" if intl else num), f"ES_{'intl' if intl else 'local'}"
    if c == "IT":
        if rng.random() < 0.5:
            num = f"3{rng.choice('234')}{_digits(rng, 1)} {_digits(rng, 3)} {_digits(rng, 4)}"
        else:
            num = f"06 {_digits(rng, 4)} {_digits(rng, 4)}"
        return (f"+39 {num}" if intl else num), f"IT_{'intl' if intl else 'local'}"
    num = f"4{_digits(rng, 2)} {_digits(rng, 3)} {_digits(rng, 3)}"
    return (f"+61 {num}" if intl else f"0{num}"), f"AU_{'intl' if intl else 'local'}"


STREETS_EN = [
    "Mill Lane",
    "Cranbrook Road",
    "Elm Grove",
    "Harbour Street",
    "Station Road",
    "Kingsley Avenue",
    "Orchard Close",
    "Willow Crescent",
    "Church Street",
    "Beacon Hill Road",
]
US_STREETS = [
    "Maple Street",
    "Oak Ave",
    "Linden Boulevard",
    "Sunset Drive",
    "Cedar Lane",
    "Hawthorne Street",
    "Division St",
    "Alberta Street",
    "Greenwood Avenue",
]
US_CITIES = [
    ("Portland", "OR", "972"),
    ("Chicago", "IL", "606"),
    ("Austin", "TX", "787"),
    ("Boston", "MA", "021"),
    ("Seattle", "WA", "981"),
]
GB_POST = [
    ("London", "N8 {d}QU"),
    ("Oxford", "OX2 {d}HT"),
    ("Leeds", "LS6 {d}AB"),
    ("Bristol", "BS1 {d}XE"),
    ("Manchester", "M14 {d}PL"),
    ("Edinburgh", "EH9 {d}JN"),
    ("London", "SE15 {d}RW"),
    ("Cardiff", "CF24 {d}DG"),
]
FR = [
    ("rue des Lilas", "75011", "Paris"),
    ("avenue Jean Jaurès", "69007", "Lyon"),
    ("boulevard Voltaire", "75011", "Paris"),
    ("rue de la République", "13001", "Marseille"),
    ("place du Marché", "44000", "Nantes"),
    ("impasse des Acacias", "31000", "Toulouse"),
    ("chemin des Vignes", "33000", "Bordeaux"),
    ("allée des Tilleuls", "67000", "Strasbourg"),
]
DE = [
    ("Hauptstraße", "10115", "Berlin"),
    ("Lindenweg", "80331", "München"),
    ("Am Kirchplatz", "50667", "Köln"),
    ("Schillerstraße", "60313", "Frankfurt am Main"),
    ("Bergmannstr.", "10961", "Berlin"),
    ("Goethestraße", "04109", "Leipzig"),
    ("Rosenweg", "20095", "Hamburg"),
]
NL = [
    ("Prinsengracht", "1016 GV", "Amsterdam"),
    ("Oudegracht", "3511 AL", "Utrecht"),
    ("Witte de Withstraat", "3012 BN", "Rotterdam"),
    ("Lange Voorhout", "2514 EE", "Den Haag"),
]
SE = [
    ("Storgatan", "114 51", "Stockholm"),
    ("Kungsgatan", "411 19", "Göteborg"),
    ("Södra Förstadsgatan", "211 43", "Malmö"),
    ("Vasavägen", "752 36", "Uppsala"),
]
IT = [
    ("Via Roma", "00184", "Roma"),
    ("Via Garibaldi", "10122", "Torino"),
    ("Corso Buenos Aires", "20124", "Milano"),
    ("Piazza Santo Spirito", "50125", "Firenze"),
]
ES = [
    ("Calle de Alcalá", "28014", "Madrid"),
    ("Carrer de Mallorca", "08036", "Barcelona"),
    ("Avenida de la Constitución", "41001", "Sevilla"),
]
CA = [
    ("King St W", "Toronto", "ON", "M5K 1A1"),
    ("Rue Saint-Denis", "Montréal", "QC", "H2X 3K8"),
    ("Commercial Drive", "Vancouver", "BC", "V5L 3X9"),
]


def _address(rng):
    """(text, form) for a street address or a postcode in one country's format."""
    c = rng.choice(["US", "GB", "GB_postcode", "FR", "DE", "NL", "SE", "IT", "ES", "CA"])
    n = rng.randrange(1, 120)
    if c == "US":
        city, st, z = rng.choice(US_CITIES)
        base = f"{rng.randrange(100, 9999)} {rng.choice(US_STREETS)}"
        return (base if rng.random() < 0.4 else f"{base}, {city}, {st} {z}{_digits(rng, 2)}"), "address_US"
    if c in ("GB", "GB_postcode"):
        city, pc = rng.choice(GB_POST)
        pc = pc.format(d=rng.randrange(1, 10))
        if c == "GB_postcode":
            return pc, "postcode_GB"
        flat = f"Flat {rng.randrange(1, 9)}, " if rng.random() < 0.25 else ""
        return f"{flat}{n} {rng.choice(STREETS_EN)}, {city} {pc}", "address_GB"
    if c == "FR":
        street, pc, city = rng.choice(FR)
        bis = " bis" if rng.random() < 0.15 else ""
        return (f"{n}{bis} {street}" if rng.random() < 0.3 else f"{n}{bis} {street}, {pc} {city}"), "address_FR"
    if c == "DE":
        street, pc, city = rng.choice(DE)
        num = f"{n}{rng.choice(['', '', 'a', 'b'])}"
        return (f"{street} {num}" if rng.random() < 0.3 else f"{street} {num}, {pc} {city}"), "address_DE"
    if c == "NL":
        street, pc, city = rng.choice(NL)
        return f"{street} {n}, {pc} {city}", "address_NL"
    if c == "SE":
        street, pc, city = rng.choice(SE)
        return (f"{street} {n}" if rng.random() < 0.3 else f"{street} {n}, {pc} {city}"), "address_SE"
    if c == "IT":
        street, pc, city = rng.choice(IT)
        return f"{street} {n}, {pc} {city}", "address_IT"
    if c == "ES":
        street, pc, city = rng.choice(ES)
        return f"{street}, {n}, {pc} {city}", "address_ES"
    street, city, prov, pc = rng.choice(CA)
    return f"{n} {street}, {city}, {prov} {pc}", "address_CA"


def _iban(rng):
    country, length = rng.choice([("DE", 18), ("FR", 23), ("NL", 14), ("GB", 18), ("ES", 20)])
    if country == "NL":
        bban = "ABNA" + _digits(rng, 10)
    elif country == "GB":
        bban = "NWBK" + _digits(rng, 14)
    else:
        bban = _digits(rng, length)
    numeric = "".join(str(int(ch, 36)) for ch in bban + country + "00")
    s = f"{country}{98 - int(numeric) % 97:02d}{bban}"
    return " ".join(s[i : i + 4] for i in range(0, len(s), 4)) if rng.random() < 0.6 else s


def _card(rng):
    """A Luhn-valid Visa (4...) or Mastercard (51-55...) number."""
    digits = [4, rng.randrange(10)] if rng.random() < 0.5 else [5, rng.randrange(1, 6)]
    digits += [rng.randrange(10) for _ in range(13)]
    total = sum((d * 2 - 9 if d * 2 > 9 else d * 2) if i % 2 == 0 else d for i, d in enumerate(reversed(digits)))
    digits.append((10 - total % 10) % 10)
    s = "".join(map(str, digits))
    return " ".join(s[i : i + 4] for i in range(0, 16, 4)) if rng.random() < 0.7 else s


class Cast:
    """The people of this journal: each has a first and last name and is mentioned in various forms."""

    def __init__(self, rng):
        self.rng = rng
        firsts = rng.sample(FIRST, len(FIRST))
        self.people = [(f, rng.choice(LAST)) for f in firsts]
        # a few close friends come up often, most people a couple of times (as in a real journal)
        self.weights = [8 if i < 8 else 3 if i < 25 else 1 for i in range(len(self.people))]

    def pick(self):
        return self.rng.choices(self.people, weights=self.weights)[0]


class Msg:
    """A message under construction: text pieces with labelled spans."""

    def __init__(self, kind):
        self.kind, self.text, self.spans, self.tags = kind, "", [], []

    def add(self, s):
        self.text += s
        return self

    def value(self, s, entity_type, form):
        self.spans.append(
            {
                "field": "text",
                "index": 0,
                "start": len(self.text),
                "end": len(self.text) + len(s),
                "entity_type": entity_type,
                "form": form,
            }
        )
        self.text += s
        return self

    def tag(self, prefix, value, form):
        self.spans.append(
            {
                "field": "tags",
                "index": len(self.tags),
                "start": len(prefix),
                "end": len(prefix) + len(value),
                "entity_type": "PERSON",
                "form": form,
            }
        )
        self.tags.append(prefix + value)

    def row(self, i):
        return {"id": f"journal-{i:04d}", "kind": self.kind, "text": self.text, "tags": self.tags, "spans": self.spans}


def person(m: Msg, rng, cast, lower=False, full=None, form_prefix=""):
    first, last = cast.pick()
    full = rng.random() < 0.35 if full is None else full
    s = f"{first} {last}" if full else first
    if lower:
        s = s.lower()
    form = ("full" if full else "first") + ("_lower" if lower else "_cap")
    return m.value(s, "PERSON", form_prefix + form)


# Sentence frames. Each is a function (m, rng, cast, lower) -> None writing one sentence or line.
def F(template):
    """A frame from a template: {p} person, {ph} phone, {ad} address, {em} e-mail, {ib} IBAN, {cc} card."""

    def frame(m, rng, cast, lower):
        import re as _re

        for piece in _re.split(r"(\{\w+\})", template):
            if piece == "{p}":
                person(m, rng, cast, lower)
            elif piece == "{pf}":
                person(m, rng, cast, lower, full=False)
            elif piece == "{ph}":
                text, form = _phone(rng)
                m.value(text, "PHONE_NUMBER", form)
            elif piece == "{ad}":
                text, form = _address(rng)
                if lower and rng.random() < 0.5:
                    text, form = text.lower(), form + "_lower"
                m.value(text, "STREET_ADDRESS", form)
            elif piece == "{em}":
                first, last = cast.pick()
                local = rng.choice([f"{first}.{last}", f"{first[0]}{last}", f"{first}{rng.randrange(10, 99)}"])
                local = "".join(ch for ch in local.lower() if ch.isascii() and (ch.isalnum() or ch == "."))
                m.value(f"{local}@{rng.choice(DOMAINS)}", "EMAIL_ADDRESS", "email")
            elif piece == "{ib}":
                m.value(_iban(rng), "IBAN_CODE", "iban")
            elif piece == "{cc}":
                m.value(_card(rng), "CREDIT_CARD", "card")
            elif piece == "{ip}":
                m.value(
                    f"{rng.choice(['192.168', '10.0', '172.16'])}.{rng.randrange(256)}.{rng.randrange(1, 255)}",
                    "IP_ADDRESS",
                    "ip",
                )
            else:
                m.add(piece.lower() if lower else piece)

    return frame


PERSON_FRAMES = [
    F(t)
    for t in [
        "Had a long talk with {p} about moving back home.",
        "Coffee with {p} and {pf} before work.",
        "{p} thinks I should take the offer.",
        "Told {p} I can't make it on Saturday.",
        "Got a letter from {p} today, first one in years.",
        "Sent the photos to {p}.",
        "Walked along the canal with {pf}; she was quiet most of the way.",
        "{pf} called, her dad is in hospital again.",
        "I keep thinking about what {p} said at dinner.",
        "Need to apologise to {pf} for last week.",
        "Dinner at {pf}'s place, way too much food.",
        "{pf} and I finally finished the puzzle.",
        "Lunch w/ {p}, talked about her new job.",
        "Ran into {p} at the market.",
        "Helped {pf} move the sofa, my back hates me.",
        "Birthday card for {pf}, don't forget!",
        "{p} lent me the book about habits.",
        "Long phone call with {pf} who is thinking about leaving Berlin.",
        "Played chess with {pf} and lost twice.",
        "Picked {pf} up from the station at 9.",
        "Met {p} for the first time, he's the new team lead.",
        "Argued with {pf} about money again.",
        "{pf} says hi from Lisbon.",
        "Texted {pf} but no answer yet.",
        "{p} is coming over on Friday with the kids.",
        "My sister and {pf} went climbing.",
        "Asked {p} for advice on the mortgage.",
        "Video call with {pf} and {pf}, mostly laughing.",
        "Reminder: return {pf}'s drill.",
        "Grateful for {pf} today.",
        "{pf} made me laugh so hard at the pub.",
        "Cooked for {pf}, the risotto was fine.",
    ]
]
CONTACT_FRAMES = [
    F(t)
    for t in [
        "{pf}'s new number is {ph}.",
        "Call the landlord back on {ph} about the boiler.",
        "Dentist moved, number {ph}.",
        "If I lose my phone again: {ph}.",
        "{p} - {ph}",
        "Reach {pf} on {ph} after six.",
        "Plumber: {ph} (ask for {pf})",
        "Left a voicemail at {ph}.",
        "The school's number is {ph}, extension 4.",
        "{ph} is {pf}'s work line.",
        "Contact {p} {ph}",
        "Text me on {ph} when you land.",
        "{pf} moved to {ad}.",
        "New flat: {ad}.",
        "Parcel should go to {ad}, not the old place.",
        "We stayed with {pf} at {ad} for the weekend.",
        "The party is at {ad}, bring wine.",
        "Mum's address is {ad}.",
        "Send the contract to {ad}.",
        "Viewing tomorrow at {ad} at 10:30.",
        "Her studio is at {ad}, second floor.",
        "Postcode for the parcel: {ad}",
        "Email {pf} at {em} about the tickets.",
        "{em} is the address for the rental deposit.",
        "Rent goes to {ib} on the 1st.",
        "Paid {pf} back, IBAN {ib}.",
        "Card ending issue: {cc} got blocked.",
        "The NAS is at {ip} now.",
        "Booked with card {cc}, confirmation to {em}.",
    ]
]
BENIGN_FRAMES = [
    F(t)
    for t in [
        "Switched from Chrome to Firefox, the tabs feel faster.",
        "Python 3.13 broke my old script again.",
        "Paris in March was grey but lovely.",
        "Finished the Kindle book on the train to Oxford.",
        "Spotify Wrapped says I listened to Radiohead for 40 hours.",
        "Installed Ubuntu 24.04 on the old ThinkPad.",
        "Notion or Obsidian? Still Obsidian.",
        "The Tesla charger at the Lidl was broken.",
        "Slack was down for an hour and nobody missed it.",
        "Booked flights to Kyoto for April.",
        "Watched Dune on Netflix, the sound in the Odeon was better.",
        "Ordered a Raspberry Pi 5 from Amazon.",
        "Docker Desktop keeps eating 8 GB of RAM.",
        "Rust borrow checker won today.",
        "Bought a Moka pot in Milan.",
        "Christmas at Mum's, Boxing Day walk in the Peak District.",
        "Monday: gym, Tuesday: nothing, Wednesday: rain.",
        "The Apple Watch says I slept 5 hours.",
        "Excel crashed twice while I was editing the budget.",
        "Read about the Roman Empire and the Silk Road.",
        "Ran 10.5 km in 52:13, new best.",
        "Version 2.4.1 fixed the sync bug.",
        "Order 4471-2209 still not shipped.",
        "Score was 21-17 in the end.",
        "Train 09:42 from Utrecht Centraal was late by 12 minutes.",
        "Flat white costs €4.20 now, ridiculous.",
        "Room 1204 at the Hilton, view over the Thames.",
        "May is the busiest month at work.",
        "Will the Amsterdam trip happen? Probably June.",
        "Mark the date: the Berlin Marathon is in September.",
        "Grace period for the library books ends Friday.",
        "Reading Dostoevsky on the Kindle, slowly.",
        "The Jupyter notebook has 300 cells now.",
        "GitHub Copilot suggested nonsense again.",
        "Zoom with the whole team, Teams for the client.",
        "The Louvre queue was two hours.",
        "Firefox Nightly, Chrome Canary, Safari Tech Preview: all crash on that page.",
        "Bank Holiday Monday, everything closed in Dublin.",
        "Learned that the Danube flows through ten countries.",
        "The PlayStation 5 is still in its box.",
        "Took the Eurostar from St Pancras to Gare du Nord.",
        "Ikea trip: Billy shelf, Poäng chair, meatballs.",
        "Set up Home Assistant on the Pi.",
        "Signal group for the Lisbon trip is chaos.",
        "Postgres 16 upgrade went fine on the staging box.",
        "ISBN 978-0-14-303943-3 is the edition I want.",
        "Invoice INV-2026-0193 paid.",
        "The Duolingo owl is judging me, 212 day streak.",
        "Linux Mint on Mum's laptop, she likes it.",
    ]
]
CODE_SNIPPETS = [
    "```python\nfrom pathlib import Path\n\ndata = Path('notes.md').read_bytes()\nprint(len(data))\n```",
    "Use `path.read_bytes()` instead of opening the file yourself.",
    '```bash\ngit commit -m "Fix Chrome rendering" && git push origin main\n```',
    "The fix was `sorted(items, key=lambda x: x.created_at)`.",
    "```js\nconst res = await fetch('https://api.github.com/repos/python/cpython');\nconsole.log(res.status);\n```",
    "```sql\nSELECT name, created FROM notes WHERE tag = 'journal' ORDER BY created DESC;\n```",
    "`docker compose up -d` and then `docker logs -f web`.",
    '```yaml\nservices:\n  web:\n    image: nginx:1.27\n    ports: ["8080:80"]\n```',
    "In Python, `Counter(words).most_common(10)` does it in one line.",
    "```python\nclass Person:\n    def __init__(self, name: str):\n        self.name = name\n```",
    "Read https://docs.python.org/3/library/pathlib.html and the README.md again.",
    "Renamed `report_final_v2.xlsx` to `report.xlsx`.",
    "`pip install polars==1.9.0` fixed the import error.",
    '```rust\nfn main() {\n    println!("Hello, Ferris!");\n}\n```',
]
CODE_WITH_VALUE = [
    ('```bash\ngit config --global user.email "', '"\n```'),
    ('```python\nSMTP_USER = "', '"\n```'),
]


def journal(rng, cast):
    m = Msg("journal")
    lower = rng.random() < 0.2  # some days everything is typed in lower case
    m.add(rng.choice(["Today. ", "", "Evening. ", "Ugh. ", "Good day. ", ""]))
    for _ in range(rng.randint(2, 5)):
        bag = rng.choices([PERSON_FRAMES, CONTACT_FRAMES, BENIGN_FRAMES], weights=[5, 3, 3])[0]
        rng.choice(bag)(m, rng, cast, lower)
        m.add(" " if rng.random() < 0.7 else "\n\n")
    m.text = m.text.rstrip()
    return m


def chat(rng, cast):
    m = Msg("chat")
    lower = rng.random() < 0.6
    bag = rng.choices([PERSON_FRAMES, CONTACT_FRAMES, BENIGN_FRAMES], weights=[4, 4, 3])[0]
    m.add(rng.choice(["", "hey, ", "ok so ", "quick q: ", "lol ", ""]))
    rng.choice(bag)(m, rng, cast, lower)
    if rng.random() < 0.4:
        m.add(" ")
        rng.choice(rng.choice([PERSON_FRAMES, BENIGN_FRAMES]))(m, rng, cast, lower)
    return m


def note(rng, cast):
    """A note as the scrubber sees it: a heading or title line, bullets, wikilinks, `people/` tags."""
    m = Msg("note")
    first, last = cast.pick()
    style = rng.choice(["heading", "title", "meeting", "person"])
    if style == "heading":
        m.add("# ").add(rng.choice(["Dinner with ", "Catching up with ", "Notes on ", "Trip with "]))
        m.value(first, "PERSON", "heading")
        m.add("\n\n")
    elif style == "title":
        m.add("What are your thoughts on ").add(rng.choice(["Weekend with ", "Call with ", "Advice from "]))
        m.value(f"{first} {last}" if rng.random() < 0.5 else first, "PERSON", "title")
        m.add("?")
        return m
    elif style == "meeting":
        m.add("## Attendees\n- ")
        m.value(f"{first} {last}", "PERSON", "list_item")
        m.add("\n- ")
        f2, _ = cast.pick()
        m.value(f2, "PERSON", "list_item")
        m.add("\n\n## Notes\n")
    else:
        m.add("Follow up with [[")
        m.value(f"{first} {last}", "PERSON", "wikilink")
        m.add("]] about the trip.\n")
        m.tag("people/", f"{first.lower()}-{last.lower().replace(' ', '-')}", "tag")
    for _ in range(rng.randint(1, 3)):
        m.add("- ")
        rng.choice(rng.choices([PERSON_FRAMES, CONTACT_FRAMES, BENIGN_FRAMES], weights=[3, 2, 3])[0])(
            m, rng, cast, False
        )
        m.add("\n")
    if rng.random() < 0.3:
        m.tag("people/", first.lower(), "tag")
    m.tags.append(rng.choice(["journal", "reflection/personal", "meeting", "people"]))
    m.text = m.text.rstrip()
    return m


def code(rng, cast):
    m = Msg("code")
    if rng.random() < 0.2:
        before, after = rng.choice(CODE_WITH_VALUE)
        m.add(before)
        F("{em}")(m, rng, cast, False)
        m.add(after)
    else:
        m.add(rng.choice(CODE_SNIPPETS))
    if rng.random() < 0.4:
        m.add(" ")
        rng.choice(BENIGN_FRAMES)(m, rng, cast, False)
    return m


def benign(rng, cast):
    m = Msg("benign")
    for _ in range(rng.randint(1, 4)):
        rng.choice(BENIGN_FRAMES)(m, rng, cast, False)
        m.add(" ")
    m.text = m.text.rstrip()
    return m


def build(n: int = 700) -> list[dict]:
    rng = random.Random(SEED)
    cast = Cast(rng)
    makers = [journal, chat, note, code, benign]
    rows = []
    for i in range(n):
        m = rng.choices(makers, weights=[35, 25, 15, 8, 17])[0](rng, cast)
        rows.append(m.row(i))
    return rows


def main() -> None:
    rows = build()
    for r in rows:  # the labels point at what they claim
        for s in r["spans"]:
            assert (r["text"] if s["field"] == "text" else r["tags"][s["index"]])[s["start"] : s["end"]].strip()
    OUT.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    print(f"{len(rows)} messages, {sum(len(r['spans']) for r in rows)} labelled values -> {OUT}")


if __name__ == "__main__":
    main()
