"""Synthetic card transactions: realistic enough to train a fraud model and to demo on.

Each event is a JSON object with an ``event_id`` (so results can be matched to it), the
model's features, and a few fields the model ignores. Fraud is a few percent and follows
plausible patterns: card-not-present, far from home, at night, bursts of transactions,
high amounts in risky merchant categories.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import pandas as pd

MERCHANT_CATEGORIES = (
    "grocery",
    "restaurant",
    "fuel",
    "travel",
    "electronics",
    "online_retail",
    "jewelry",
    "gaming",
    "pharmacy",
    "utilities",
)
_RISKY = {"electronics", "jewelry", "gaming", "online_retail"}
FEATURES = (
    "amount",
    "merchant_category",
    "hour",
    "distance_from_home_km",
    "txn_last_hour",
    "card_present",
    "online",
    "customer_age",
    "account_age_days",
    "amount_vs_avg_ratio",
)


def transactions(n: int, seed: int = 0) -> tuple[pd.DataFrame, np.ndarray]:
    """``n`` transactions as a feature frame, and whether each is fraud."""
    rng = np.random.default_rng(seed)
    fraud = rng.random(n) < 0.03
    category = rng.choice(MERCHANT_CATEGORIES, n)
    risky = np.isin(category, list(_RISKY))
    hour = np.where(fraud & (rng.random(n) < 0.6), rng.integers(0, 6, n), rng.integers(6, 24, n))
    online = np.where(fraud, rng.random(n) < 0.75, rng.random(n) < 0.3)
    frame = pd.DataFrame(
        {
            "amount": np.round(
                rng.lognormal(3.3, 0.9, n) * np.where(fraud, rng.uniform(2, 8, n), 1.0), 2
            ),
            "merchant_category": category,
            "hour": hour.astype("int64"),
            "distance_from_home_km": np.round(
                rng.exponential(8, n) + np.where(fraud, rng.exponential(120, n), 0), 2
            ),
            "txn_last_hour": (rng.poisson(0.6, n) + np.where(fraud, rng.poisson(3, n), 0)).astype(
                "int64"
            ),
            "card_present": ~online & (rng.random(n) < 0.95),
            "online": online,
            "customer_age": rng.integers(18, 90, n).astype("int64"),
            "account_age_days": rng.integers(1, 5000, n).astype("int64"),
            "amount_vs_avg_ratio": np.round(
                rng.lognormal(0, 0.4, n) * np.where(fraud, rng.uniform(2, 6, n), 1.0), 3
            ),
        }
    )
    # Some fraud hides in plain sight; some legit spend looks risky.
    fraud = fraud | (risky & (frame["amount"].to_numpy() > 900) & (rng.random(n) < 0.3))
    return frame, fraud.astype(int)


@dataclass(frozen=True)
class Event:
    event_id: str
    key: bytes
    value: bytes
    malformed: bool


def _malformed(rng: random.Random, event: dict) -> bytes:
    kind = rng.randrange(6)
    if kind == 0:
        return json.dumps(event).encode()[:-7]  # truncated JSON
    if kind == 1:
        return json.dumps({**event, "amount": "a lot"}).encode()  # wrong type
    if kind == 2:
        return json.dumps({k: v for k, v in event.items() if k != "hour"}).encode()  # missing
    if kind == 3:
        return b"\xff\xfenot utf-8"
    if kind == 4:
        return json.dumps([event]).encode()  # not an object
    return json.dumps({**event, "merchant_category": None}).encode()  # null field


def events(
    n: int, *, bad_fraction: float = 0.0, seed: int = 0, id_prefix: str = "txn", first_id: int = 0
) -> Iterator[Event]:
    """``n`` events with ids ``<id_prefix>-<first_id>...``; about ``bad_fraction`` of them
    malformed on purpose."""
    frame, _ = transactions(n, seed)
    rng = random.Random(seed)
    for i, row in enumerate(frame.itertuples(index=False), start=first_id):
        event_id = f"{id_prefix}-{i}"
        body = {"event_id": event_id, "card_id": f"card-{rng.randrange(50_000)}"}
        body.update({k: (v.item() if hasattr(v, "item") else v) for k, v in row._asdict().items()})
        bad = rng.random() < bad_fraction
        value = _malformed(rng, body) if bad else json.dumps(body).encode()
        yield Event(event_id, event_id.encode(), value, bad)
