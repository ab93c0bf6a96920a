"""Write the fine-tuning demo's data: data/tickets.jsonl, 400 labelled customer messages,
and data/unlabelled.jsonl, 200 more without labels (the traffic a router sees).

Synthetic on purpose: the cases come from the templates and word lists below, drawn with a
fixed seed, so anyone can regenerate the exact files (``python make_dataset.py`` rewrites
them byte for byte; a test checks that) and nothing in them is a model's answer. Every
message belongs to exactly one of five intents, the label the eval grades; no message
appears twice in either file.

    python make_dataset.py [--cases N] [--unlabelled N] [--seed S] [--out DIR]
"""

from __future__ import annotations

import argparse
import json
import random
from pathlib import Path

LABELS = ("billing", "shipping", "technical", "account", "returns")

TEMPLATES = {
    "billing": [
        "I was charged {amount} twice for order {order}.",
        "My invoice for {month} shows {amount} but my plan costs less.",
        "Why did my card get billed {amount} on {day}?",
        "The discount code was not applied and I paid {amount}.",
        "Can I get a receipt with my company's tax number for order {order}?",
        "I cancelled my subscription but you still took {amount} this month.",
        "Please switch my payment method from {card} to bank transfer.",
        "There is a charge of {amount} I do not recognise on my statement.",
        "Is VAT included in the {amount} price?",
        "My payment of {amount} failed but the money left my account.",
    ],
    "shipping": [
        "My package for order {order} has not arrived after {days} days.",
        "The tracking for order {order} has not moved since {day}.",
        "{carrier} says delivered but there is nothing at my door.",
        "Can you ship order {order} to my office instead of my home?",
        "How long does delivery to {country} usually take?",
        "The courier left my parcel with a neighbour I do not know.",
        "Order {order} was sent to my old address, can you redirect it?",
        "Do you offer express delivery with {carrier}?",
        "My parcel arrived with the box crushed and soaked.",
        "It has been {days} days and order {order} still shows as processing.",
    ],
    "technical": [
        "The {device} app crashes when I open the {page} page.",
        "I get error {code} every time I try to upload a photo.",
        "The website is stuck loading on {browser}.",
        "After the latest update the {device} app will not start.",
        "Notifications stopped working on my {device}.",
        "The {page} page shows a blank screen on {browser}.",
        "Search returns nothing even for products I know exist.",
        "The {device} app freezes for a minute and then shows error {code}.",
        "Sync between my {device} and the website keeps failing.",
        "Buttons on the {page} page do nothing when I click them on {browser}.",
    ],
    "account": [
        "I cannot log in even after resetting my password.",
        "Please change the email address on my account to my new one.",
        "How do I delete my account and all my data?",
        "Someone else may have access to my account, I got a login alert from {country}.",
        "The verification code never arrives on my phone.",
        "I want to merge my two accounts into one.",
        "My account was locked after too many login attempts.",
        "How can I turn on two-factor authentication?",
        "I need to update my username, it still shows my maiden name.",
        "The password reset link says it has expired.",
    ],
    "returns": [
        "I want to return the {item} from order {order}, it does not fit.",
        "How do I send back a {item} I bought {days} days ago?",
        "The {item} I received is the wrong colour, I would like to exchange it.",
        "Can I return an opened {item}?",
        "I sent the {item} back on {day}, when will I get my refund?",
        "Please send me a return label for order {order}.",
        "The {item} stopped working after a week and I want to return it.",
        "Is the return window 30 days for the {item}?",
        "I returned order {order} but the refund has not shown up yet.",
        "Can I exchange the {item} for a bigger size?",
    ],
}

WORDS = {
    "amount": ["$12.99", "$49.00", "$120", "€35", "£18.50", "$7.25", "$260"],
    "month": ["January", "March", "June", "September", "November"],
    "day": ["Monday", "Tuesday", "Friday", "the 3rd", "the 17th", "last weekend"],
    "card": ["my Visa card", "my Mastercard", "PayPal", "my debit card"],
    "carrier": ["DHL", "UPS", "FedEx", "the postal service", "DPD"],
    "country": ["Canada", "Germany", "Brazil", "Japan", "Ireland", "Kenya"],
    "days": ["5", "9", "12", "14", "21"],
    "device": ["iPhone", "Android", "iPad", "tablet", "desktop"],
    "page": ["settings", "checkout", "profile", "orders", "wishlist"],
    "code": ["E102", "500", "0x80070005", "TIMEOUT-7", "403"],
    "browser": ["Firefox", "Chrome", "Safari", "Edge"],
    "item": ["jacket", "pair of shoes", "blender", "lamp", "backpack", "headset"],
}

OPENINGS = ["", "", "Hi, ", "Hello, ", "Good morning. ", "Hey team, "]
CLOSINGS = ["", "", " Thanks.", " Please help.", " Thank you in advance.", " This is urgent."]


def cases(
    count: int, rng: random.Random, seen: set[str], prefix: str = "c"
) -> list[dict[str, str]]:
    """``count`` messages not in ``seen``, the labels taking turns so every class has its
    share."""
    out = []
    for number in range(1, count + 1):
        label = LABELS[(number - 1) % len(LABELS)]
        text = ""
        while not text or text in seen:  # no message twice: a held-out case is a new one
            template = rng.choice(TEMPLATES[label])
            fields = {name: rng.choice(words) for name, words in WORDS.items()}
            fields["order"] = str(rng.randint(10000, 99999))
            text = rng.choice(OPENINGS) + template.format(**fields) + rng.choice(CLOSINGS)
        seen.add(text)
        out.append({"id": f"{prefix}{number:03d}", "text": text, "label": label})
    rng.shuffle(out)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=400)
    parser.add_argument("--unlabelled", type=int, default=200)
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "data")
    args = parser.parse_args()
    rng = random.Random(args.seed)
    seen: set[str] = set()
    labelled = cases(args.cases, rng, seen)
    unlabelled = [
        {"id": case["id"], "text": case["text"]} for case in cases(args.unlabelled, rng, seen, "u")
    ]
    for name, rows in (("tickets.jsonl", labelled), ("unlabelled.jsonl", unlabelled)):
        path = args.out / name
        path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
        print(f"wrote {len(rows)} cases to {path}")


if __name__ == "__main__":
    main()
