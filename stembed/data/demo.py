"""The demo data set: customer-support question pairs generated here, deterministically by seed.

Sentences are phrasings of support intents, filled with a product. Pairs score 1.0 for two
phrasings of the same intent, 0.5 for two intents of the same topic and 0.0 otherwise. Train
and eval pairs are built from disjoint sentences, so the eval score measures generalisation.
"""

from __future__ import annotations

import random
import re

from datasets import Dataset

from stembed.data.loading import PairData, finish_pairs

PRODUCTS = ["laptop", "phone", "headphones", "coffee machine", "desk chair", "camera", "printer", "tablet"]

# topic -> intent -> phrasings ({p} is a product)
INTENTS: dict[str, dict[str, list[str]]] = {
    "account": {
        "reset_password": [
            "How do I reset my password?",
            "I forgot my password and cannot log in.",
            "Where can I change my login password?",
            "My password does not work anymore, how do I get a new one?",
            "Can you send me a password reset link?",
            "I am locked out of my account because of my password.",
        ],
        "delete_account": [
            "How can I delete my account?",
            "Please close my account permanently.",
            "I want to remove my profile and all my data.",
            "What are the steps to cancel my account for good?",
            "Delete my user account, please.",
            "I no longer want an account with you, how do I remove it?",
        ],
        "update_email": [
            "How do I change the email address on my account?",
            "I need to update my email.",
            "My email address changed, where do I edit it?",
            "Can I use a different email for my profile?",
            "Please replace the email linked to my account.",
            "Where is the setting to switch my contact email?",
        ],
    },
    "orders": {
        "track_order": [
            "Where is my {p} order?",
            "How can I track the {p} I ordered?",
            "My {p} has not arrived yet, where is it?",
            "Can you tell me the delivery status of my {p}?",
            "I want to follow the shipment of my {p}.",
            "When will my {p} be delivered?",
        ],
        "cancel_order": [
            "I want to cancel my {p} order.",
            "Please cancel the {p} I bought yesterday.",
            "How do I cancel an order for a {p}?",
            "Can I still stop my {p} order before it ships?",
            "I changed my mind about the {p}, cancel it please.",
            "Is it possible to call off my {p} purchase?",
        ],
        "change_address": [
            "How do I change the delivery address for my {p}?",
            "Please ship my {p} to a different address.",
            "I moved, can you update the shipping address of my {p} order?",
            "The address on my {p} order is wrong, how do I fix it?",
            "Can I send the {p} to my office instead of my home?",
            "I need to edit where my {p} will be delivered.",
        ],
    },
    "payments": {
        "refund": [
            "How do I get a refund for my {p}?",
            "I want my money back for the {p}.",
            "When will I receive the refund for the returned {p}?",
            "Can you refund the {p} I sent back?",
            "My {p} refund has not arrived yet.",
            "Please return the money I paid for the {p}.",
        ],
        "payment_methods": [
            "Which payment methods do you accept?",
            "Can I pay with a credit card?",
            "Do you take PayPal?",
            "Is bank transfer a possible way to pay?",
            "What options do I have to pay for an order?",
            "Can I pay in installments?",
        ],
        "invoice": [
            "Where can I download the invoice for my {p}?",
            "I need a receipt for the {p} I bought.",
            "Please send me the bill for my {p} order.",
            "How do I get a copy of the invoice for the {p}?",
            "My company needs an invoice for the {p} purchase.",
            "Can you email me the invoice of my {p}?",
        ],
    },
    "product": {
        "warranty": [
            "Is my {p} still under warranty?",
            "How long is the warranty on the {p}?",
            "Does the warranty cover a broken {p}?",
            "What does the {p} guarantee include?",
            "Can I get my {p} repaired under warranty?",
            "How do I make a warranty claim for my {p}?",
        ],
        "broken_item": [
            "My {p} arrived broken.",
            "The {p} I received is damaged.",
            "My new {p} does not turn on.",
            "The {p} stopped working after one day.",
            "I got a defective {p}, what can I do?",
            "The screen of my {p} is cracked out of the box.",
        ],
    },
    "contact": {
        "human_agent": [
            "Can I talk to a real person?",
            "I want to speak with a human agent.",
            "Please connect me to customer service staff.",
            "Is there someone I can call?",
            "Get me a human, not a bot.",
            "How do I reach a support representative?",
        ],
        "opening_hours": [
            "What are your opening hours?",
            "When is customer support available?",
            "Are you open on weekends?",
            "At what time does your support line close?",
            "Which hours can I contact you?",
            "Is the help desk open at night?",
        ],
    },
}


def _sentences(rng: random.Random) -> list[tuple[str, str, str]]:
    """All (text, intent, topic) triples: each phrasing filled with every product, shuffled."""
    rows = set()
    for topic, intents in INTENTS.items():
        for intent, phrasings in intents.items():
            for phrasing in phrasings:
                for product in PRODUCTS:
                    rows.add((phrasing.format(p=product), intent, topic))
    ordered = sorted(rows)
    rng.shuffle(ordered)
    return ordered


def _pairs(pool: list[tuple[str, str, str]], n: int, rng: random.Random) -> dict[str, list]:
    """n pairs from pool: a third each of same-intent, same-topic and unrelated pairs."""
    by_intent: dict[str, list] = {}
    by_topic: dict[str, list] = {}
    for row in pool:
        by_intent.setdefault(row[1], []).append(row)
        by_topic.setdefault(row[2], []).append(row)
    out: dict[str, list] = {"sentence1": [], "sentence2": [], "score": []}
    seen: set[tuple[str, str]] = set()
    kinds = [1.0, 0.5, 0.0]
    while len(out["score"]) < n:
        score = kinds[len(out["score"]) % 3]
        first = rng.choice(pool)
        if score == 1.0:
            candidates = [r for r in by_intent[first[1]] if r[0] != first[0]]
        elif score == 0.5:
            candidates = [r for r in by_topic[first[2]] if r[1] != first[1]]
        else:
            candidates = [r for r in pool if r[2] != first[2]]
        if not candidates:
            continue
        second = rng.choice(candidates)
        if (first[0], second[0]) in seen:
            continue
        seen.add((first[0], second[0]))
        out["sentence1"].append(first[0])
        out["sentence2"].append(second[0])
        out["score"].append(score)
    return out


def demo_pairs(
    name: str = "stembed demo support pairs",
    n_train: int = 480,
    n_eval: int = 200,
    positive_min_score: float = 1.0,
    seed: int = 42,
) -> PairData:
    """Generate the demo's train and eval pairs (sentence1, sentence2, score)."""

    rng = random.Random(seed)
    sentences = _sentences(rng)
    cut = int(len(sentences) * 0.7)
    train = Dataset.from_dict(_pairs(sentences[:cut], n_train, rng))
    eval_ = Dataset.from_dict(_pairs(sentences[cut:], n_eval, rng))
    return finish_pairs(
        train,
        eval_,
        name=name,
        source=f"generated by stembed.data.demo (seed {seed})",
        hub_id=None,
        rows_in=len(sentences),
        positive_min_score=positive_min_score,
    )


def vocabulary() -> list[str]:
    """Every lower-cased word of the demo sentences (for the tiny test model's tokenizer)."""
    words = set()
    for intents in INTENTS.values():
        for phrasings in intents.values():
            for phrasing in phrasings:
                for product in PRODUCTS:
                    words.update(_words(phrasing.format(p=product)))
    return sorted(words)


def _words(text: str) -> list[str]:

    return re.findall(r"[a-z0-9]+|[^\sa-z0-9]", text.lower())
