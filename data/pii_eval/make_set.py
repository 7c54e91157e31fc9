"""Generate the labelled PII evaluation set (messages.jsonl) deterministically.

Every value is invented (well-known test card numbers and IBANs, example.* domains, 555 numbers).
Each line: {"id", "text", "spans": [{"start", "end", "entity_type"}]}; negatives have no spans.
Run: python data/pii_eval/make_set.py  (seeded: the output is identical on every run)
"""

from __future__ import annotations

import json
import random
import re
from pathlib import Path

SEED = 1234
FIRST = [
    "John",
    "Mary",
    "David",
    "Sarah",
    "Michael",
    "Emma",
    "James",
    "Olivia",
    "Robert",
    "Linda",
    "Anna",
    "Peter",
    "Karin",
    "Erik",
    "Sofia",
    "Lars",
    "Maria",
    "Thomas",
    "Laura",
    "Daniel",
    "Jessica",
    "Mohammed",
    "Priya",
    "Carlos",
    "Yuki",
]
LAST = [
    "Smith",
    "Johnson",
    "Williams",
    "Brown",
    "Miller",
    "Davis",
    "Wilson",
    "Anderson",
    "Taylor",
    "Thomas",
    "Lindqvist",
    "Berg",
    "Svensson",
    "Garcia",
    "Martinez",
    "Nguyen",
    "Patel",
    "Kowalski",
    "Schmidt",
    "Rossi",
]
DOMAINS = ["example.com", "example.org", "example.net", "mail.example.com"]
PHONES = [
    "+1 415 555 0132",
    "+1 (212) 555-0187",
    "415-555-0199",
    "(650) 555-0123",
    "+44 20 7946 0958",
    "+46 70 123 45 67",
    "070-123 45 67",
    "08-123 456 78",
    "+49 30 901820",
    "+33 1 70 36 39 70",
    "212.555.0144",
    "+1 646 555 0100",
]
CARDS = [
    "4111 1111 1111 1111",
    "4111-1111-1111-1111",
    "5500 0055 5555 5559",
    "5555555555554444",
    "3400 000000 00009",
    "6011 0009 9013 9424",
    "4012888888881881",
    "378282246310005",
]
IBANS = [
    "DE89 3704 0044 0532 0130 00",
    "GB29NWBK60161331926819",
    "SE45 5000 0000 0583 9825 7466",
    "FR1420041010050500013M02606",
    "NL91ABNA0417164300",
    "DE89370400440532013000",
]
ADDRESSES = [
    "221 Maple Street, Springfield, IL 62704",
    "1600 Pennsylvania Avenue, Washington, DC 20500",
    "42 Oak Lane, Portland, OR 97205",
    "77 Elm Road",
    "9 Harbor View Drive, Seattle, WA 98101",
    "Storgatan 12, 114 51 Stockholm",
    "Kungsgatan 44, 411 19 Göteborg",
    "Hauptstraße 5, 10115 Berlin",
    "Drottninggatan 7, 111 51 Stockholm",
    "350 Fifth Avenue, New York, NY 10118",
]
IPS = ["192.168.14.27", "10.0.3.191", "203.0.113.45", "172.16.254.1"]
TEMPLATES = [
    "Can you draft a reply to {PERSON}? Her email is {EMAIL_ADDRESS}.",
    "Remind me to call {PERSON} on {PHONE_NUMBER} tomorrow about the invoice.",
    "My card {CREDIT_CARD} was charged twice, how do I dispute it?",
    "Send the refund to {IBAN_CODE} and cc {EMAIL_ADDRESS}.",
    "We moved to {STREET_ADDRESS} last month, please update the delivery address.",
    "{PERSON} said the server at {IP_ADDRESS} is down again.",
    "Meeting notes: {PERSON} and {PERSON} agreed to ship on Friday. Contact: {PHONE_NUMBER}.",
    "Write a polite note to {PERSON} ({EMAIL_ADDRESS}) asking about the lease at {STREET_ADDRESS}.",
    "The hotel has my card on file, {CREDIT_CARD}, and my number {PHONE_NUMBER}.",
    "Please pay the deposit to IBAN {IBAN_CODE}, account holder {PERSON}.",
    "Lunch with {PERSON} next week? Text me at {PHONE_NUMBER}.",
    "Forward the contract to {EMAIL_ADDRESS} before noon.",
]
NEGATIVES = [
    "How do I reverse a linked list in place?",
    "Summarize the main ideas of stoicism in three bullets.",
    "What is the difference between a process and a thread?",
    "Give me a recipe for a quick tomato soup.",
    "Explain why the sky is blue to a ten year old.",
    "Version 3.11 was released with faster startup.",
    "The meeting moved from 10:30 to 14:00 on Tuesday.",
    "Translate 'good morning' into French and Spanish.",
    "Which sorting algorithm is stable and runs in O(n log n)?",
    "Plan a three day hiking trip with a packing list.",
    "Our build takes 45 minutes; how can caching help?",
    "Write a haiku about autumn rain.",
    "Compare PostgreSQL and SQLite for a small web app.",
    "What are good habits for writing commit messages?",
    "The invoice total was 1,250 dollars including tax.",
    "Suggest names for a cat that likes to sleep.",
]


def fill(template: str, rng: random.Random) -> tuple[str, list[dict]]:
    text, spans, pos = "", [], 0
    for m in re.finditer(r"\{([A-Z_]+)\}", template):
        text += template[pos : m.start()]
        kind = m.group(1)
        if kind == "PERSON":
            value = f"{rng.choice(FIRST)} {rng.choice(LAST)}"
        elif kind == "EMAIL_ADDRESS":
            value = f"{rng.choice(FIRST).lower()}.{rng.choice(LAST).lower()}@{rng.choice(DOMAINS)}"
        else:
            value = rng.choice(
                {
                    "PHONE_NUMBER": PHONES,
                    "CREDIT_CARD": CARDS,
                    "IBAN_CODE": IBANS,
                    "STREET_ADDRESS": ADDRESSES,
                    "IP_ADDRESS": IPS,
                }[kind]
            )
        spans.append({"start": len(text), "end": len(text) + len(value), "entity_type": kind})
        text += value
        pos = m.end()
    return text + template[pos:], spans


def main() -> None:
    rng = random.Random(SEED)
    rows = []
    for i in range(200):
        text, spans = fill(TEMPLATES[i % len(TEMPLATES)], rng)
        rows.append({"id": f"pii-{i:03d}", "text": text, "spans": spans})
    for i, text in enumerate(NEGATIVES * 3):
        rows.append({"id": f"neg-{i:03d}", "text": text, "spans": []})
    out = Path(__file__).with_name("messages.jsonl")
    out.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    print(f"wrote {len(rows)} messages to {out}")


if __name__ == "__main__":
    main()
