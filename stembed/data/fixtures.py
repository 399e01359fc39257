"""Small generated data sets in the `datasets=local` file layout, one per preset, for tests and trying
presets offline. Nothing here is copied from the real data sets; only their shapes (file names and
columns) are the same.

    python -m stembed.data.fixtures data/      # then: stembed train +experiment=it_tickets datasets=local
"""

from __future__ import annotations

import json
import random
import sys
from pathlib import Path

import pandas as pd

from stembed.data.demo import INTENTS, PRODUCTS, demo_pairs

TICKET_WORDS = {
    "Hardware": ["laptop", "screen", "keyboard", "docking station", "monitor", "battery"],
    "Access": ["password", "account locked", "vpn login", "permission", "mfa token", "sso"],
    "HR Support": ["holiday request", "payroll", "contract", "sick leave", "onboarding", "benefits"],
    "Storage": ["shared drive", "disk quota", "backup", "file server", "onedrive", "archive"],
}
SHOPS = ["north store", "city mall", "online outlet", "corner shop"]
BRANDS = ["acme", "globex", "initech", "umbrella", "hooli"]


def _support_rows(seed: int) -> list[dict[str, str]]:
    rng = random.Random(seed)
    rows = []
    for topic, intents in INTENTS.items():
        for intent, phrasings in intents.items():
            for phrasing in phrasings:
                for product in rng.sample(PRODUCTS, 3):
                    rows.append(
                        {"text": phrasing.format(p=product), "intent": intent, "category": topic.upper()}
                    )
    rng.shuffle(rows)
    return rows


def _tickets(n: int, rng: random.Random) -> pd.DataFrame:
    rows = []
    for index in range(n):
        group = list(TICKET_WORDS)[index % len(TICKET_WORDS)]
        words = rng.sample(TICKET_WORDS[group], 2)
        rows.append(
            {
                "Document": f"hello {words[0]} issue please help {words[1]} not working thanks",
                "Topic_group": group,
            }
        )
    return pd.DataFrame(rows)


def _guides(rng: random.Random) -> list[dict]:
    guides = []
    for product in PRODUCTS:
        for part in ["battery", "screen", "charging port", "fan", "button"]:
            symptoms = [
                f"my {product} {part} stopped working",
                f"the {part} of the {product} is broken",
                f"{product} {part} problem after a drop",
            ]
            guides.append(
                {"title": f"{product.title()} {part} replacement", "category": product, "symptoms": symptoms}
            )
    rng.shuffle(guides)
    return guides


def _interactions(n: int, rng: random.Random) -> list[dict]:
    rows = []
    for index in range(n):
        user = index % 60
        topic = list(INTENTS)[user % len(INTENTS)]
        rows.append(
            {
                "user_id": f"u{user}",
                "history_categories": rng.sample(PRODUCTS, 2),
                "history_shops": rng.sample(SHOPS, 2),
                "history_brands": rng.sample(BRANDS, 2),
                "history_intentions": [topic],
                "item_id": f"i{rng.randrange(200)}",
                "category": rng.choice(PRODUCTS),
                "shop": rng.choice(SHOPS),
                "brand": rng.choice(BRANDS),
            }
        )
    return rows


def write_fixtures(root: Path, seed: int = 0) -> Path:
    """Write one small file set per preset under root; return root."""
    rng = random.Random(seed)
    for directory in [
        "quora-duplicates",
        "stsb",
        "bitext-customer-support",
        "it-service-tickets",
        "banking77",
    ]:
        (root / directory).mkdir(parents=True, exist_ok=True)
    pairs = demo_pairs(n_train=240, n_eval=90, seed=seed)
    train, held = pairs.train.to_pandas(), pairs.eval.to_pandas()
    quora = pd.concat([train, held]).rename(columns={"score": "label"})
    quora["label"] = (quora["label"] == 1.0).astype(int)
    quora.to_csv(root / "quora-duplicates" / "pair-class.csv", index=False)
    train.to_csv(root / "stsb" / "train.csv", index=False)
    held.iloc[:45].to_csv(root / "stsb" / "validation.csv", index=False)
    held.iloc[45:].to_csv(root / "stsb" / "test.csv", index=False)
    support = pd.DataFrame(_support_rows(seed))
    bitext = support.rename(columns={"text": "instruction"}).assign(
        context="customer support", response="..."
    )
    bitext.to_csv(
        root / "bitext-customer-support" / "Bitext_Sample_Customer_Support_Training_Dataset.csv", index=False
    )
    banking = support.rename(columns={"intent": "category", "category": "topic"})[["text", "category"]]
    banking.iloc[: len(banking) * 3 // 4].to_csv(root / "banking77" / "train.csv", index=False)
    banking.iloc[len(banking) * 3 // 4 :].to_csv(root / "banking77" / "test.csv", index=False)
    _tickets(240, rng).to_csv(
        root / "it-service-tickets" / "all_tickets_processed_improved_v3.csv", index=False
    )
    _write_jsonl(root / "ifixit" / "guides.jsonl", _guides(rng))
    _write_jsonl(root / "recsys" / "interactions.jsonl", _interactions(300, rng))
    return root


def _write_jsonl(path: Path, rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")


if __name__ == "__main__":
    target = Path(sys.argv[1] if len(sys.argv) > 1 else "data")
    print(f"fixtures written to {write_fixtures(target)}")
