"""A throughput workload for the benchmarks: realistic JSON events with 24 features, a model
with a matching signature, and a fast loader into a partitioned topic.

    frame = features(20_000, seed=0)               # the 24 model inputs as a pandas frame
    values = event_values(frame, first_id=0)       # one JSON object per row, plus event_id
    model = train_and_register(work_dir)           # sklearn pipeline in a sqlite registry
    preload(bootstrap, "events", 1_000_000, 4)     # produce in chunks, fast

Each event is a flat JSON object: ``event_id`` (also the record key), 11 floats, 6
integers, 4 categorical strings and 3 booleans. The model is a scikit-learn pipeline (the
categorical columns are ordinal-encoded inside it, then a HistGradientBoostingClassifier of
100 iterations treats them as categorical), logged with a signature and an input example and
registered to a sqlite MLflow registry; its pyfunc returns class probabilities (columns
``0`` and ``1``), like the demo model.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from streamer.tools.synthetic import MERCHANT_CATEGORIES

MODEL_NAME = "throughput-model"
MODEL_ALIAS = "bench"

CATEGORIES: dict[str, tuple[str, ...]] = {
    "merchant_category": MERCHANT_CATEGORIES,
    "channel": ("pos", "web", "app", "atm", "phone"),
    "country": ("US", "GB", "DE", "FR", "NL", "ES", "IT", "BR", "IN", "NG", "CN", "JP"),
    "card_type": ("debit", "credit", "prepaid", "corporate"),
}
FLOATS = (
    "amount",
    "amount_vs_avg_ratio",
    "distance_from_home_km",
    "merchant_risk_score",
    "device_trust_score",
    "ip_risk_score",
    "balance_before",
    "amount_24h",
    "avg_amount_30d",
    "seconds_since_last_txn",
    "credit_utilization",
)
INTS = (
    "hour",
    "day_of_week",
    "txn_last_hour",
    "txn_last_24h",
    "customer_age",
    "account_age_days",
)
STRINGS = tuple(CATEGORIES)
BOOLS = ("card_present", "online", "is_international")
FEATURES: tuple[str, ...] = (*FLOATS, *INTS, *STRINGS, *BOOLS)
assert len(FEATURES) == 24


def features(n: int, seed: int = 0) -> pd.DataFrame:
    """``n`` rows of the 24 features, in :data:`FEATURES` order (float64, int64, str, bool)."""
    rng = np.random.default_rng(seed)
    online = rng.random(n) < 0.35
    amount = np.round(rng.lognormal(3.4, 1.0, n), 2)
    avg = np.round(rng.lognormal(3.4, 0.6, n), 2)
    columns: dict[str, np.ndarray] = {
        "amount": amount,
        "amount_vs_avg_ratio": np.round(amount / avg, 4),
        "distance_from_home_km": np.round(rng.exponential(12, n), 3),
        "merchant_risk_score": np.round(rng.beta(2, 8, n), 4),
        "device_trust_score": np.round(rng.beta(6, 2, n), 4),
        "ip_risk_score": np.round(rng.beta(1.5, 9, n), 4),
        "balance_before": np.round(rng.lognormal(7, 1.2, n), 2),
        "amount_24h": np.round(amount * rng.uniform(1, 6, n), 2),
        "avg_amount_30d": avg,
        "seconds_since_last_txn": np.round(rng.exponential(20_000, n), 1),
        "credit_utilization": np.round(rng.uniform(0, 1, n), 4),
        "hour": rng.integers(0, 24, n),
        "day_of_week": rng.integers(0, 7, n),
        "txn_last_hour": rng.poisson(0.7, n),
        "txn_last_24h": rng.poisson(4, n),
        "customer_age": rng.integers(18, 90, n),
        "account_age_days": rng.integers(1, 6000, n),
    }
    for name, values in CATEGORIES.items():
        columns[name] = rng.choice(np.array(values, dtype=object), n)
    columns["card_present"] = ~online & (rng.random(n) < 0.9)
    columns["online"] = online
    columns["is_international"] = rng.random(n) < 0.08
    frame = pd.DataFrame(columns)
    for name in INTS:
        frame[name] = frame[name].astype("int64")
    return frame[list(FEATURES)]


def labels(frame: pd.DataFrame, seed: int = 1) -> np.ndarray:
    """A few percent positives that depend on several features, categorical ones included."""
    rng = np.random.default_rng(seed)
    risky = frame["merchant_category"].isin(["electronics", "jewelry", "gaming"]).to_numpy()
    logit = (
        -4.5
        + 1.2 * np.log1p(frame["amount_vs_avg_ratio"].to_numpy())
        + 0.02 * np.minimum(frame["distance_from_home_km"].to_numpy(), 200)
        + 3.0 * frame["ip_risk_score"].to_numpy()
        - 2.0 * frame["device_trust_score"].to_numpy()
        + 0.8 * risky
        + 0.6 * frame["online"].to_numpy()
        + 0.9 * frame["is_international"].to_numpy()
        + 0.3 * frame["txn_last_hour"].to_numpy()
        + 0.7 * (frame["hour"].to_numpy() < 5)
        + 0.5 * (frame["channel"] == "phone").to_numpy()
    )
    return (rng.random(len(frame)) < 1 / (1 + np.exp(-logit))).astype(int)


def event_values(frame: pd.DataFrame, first_id: int = 0, prefix: str = "ev") -> list[bytes]:
    """One compact JSON object per row: ``event_id`` first, then the features."""
    ids = [f"{prefix}-{i}" for i in range(first_id, first_id + len(frame))]
    body = frame.copy()
    body.insert(0, "event_id", ids)
    text = body.to_json(orient="records", lines=True, double_precision=10)
    return [line.encode() for line in text.splitlines()]


def event_id(index: int, prefix: str = "ev") -> str:
    return f"{prefix}-{index}"


def chunks(n: int, seed: int, size: int = 100_000) -> Iterator[tuple[int, list[bytes]]]:
    """``(first index, values)`` for ``n`` events, built ``size`` at a time (bounded memory)."""
    for start in range(0, n, size):
        count = min(size, n - start)
        yield start, event_values(features(count, seed + start), first_id=start)


def preload(
    bootstrap: str, topic: str, n: int, partitions: int, seed: int = 0, timeout: float = 600
) -> float:
    """Produce ``n`` events round-robin over ``partitions``; returns the seconds it took.
    The key is the event id. Raises when not every event is acknowledged in ``timeout``."""
    from streamer.kafka.io import produce_all

    def records() -> Iterator[tuple[bytes, bytes]]:
        for first, values in chunks(n, seed):
            for i, value in enumerate(values, start=first):
                yield event_id(i).encode(), value

    started = time.monotonic()
    produce_all(
        bootstrap,
        {},
        topic,
        records(),
        defaults={
            "linger.ms": 20,
            "batch.size": 1_000_000,
            "batch.num.messages": 10_000,
            "compression.type": "lz4",
            "queue.buffering.max.messages": 500_000,
            "queue.buffering.max.kbytes": 1_048_576,
            "acks": "all",
        },
        partition=lambda i: i % partitions,
        deadline=started + timeout,
    )
    return time.monotonic() - started


@dataclass(frozen=True)
class BenchModel:
    uri: str
    """``models:/<name>@<alias>``"""
    tracking_uri: str
    version: str
    local_path: str
    """A downloaded copy of the model directory, for ``mlflow.pyfunc.load_model``."""
    auc: float


def train_and_register(
    work_dir: Path, rows: int = 20_000, seed: int = 0, iterations: int = 100
) -> BenchModel:
    """Train the pipeline on ``rows`` events, log it with a signature and an input example,
    register it as ``throughput-model@bench`` in ``<work_dir>/mlflow.db``, and download a copy
    to ``<work_dir>/model``."""
    import mlflow
    from sklearn.compose import ColumnTransformer
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import train_test_split
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OrdinalEncoder

    from streamer.tools.train import log_classifier

    work_dir.mkdir(parents=True, exist_ok=True)
    tracking_uri = f"sqlite:///{work_dir / 'mlflow.db'}"
    mlflow.set_tracking_uri(tracking_uri)
    frame = features(rows, seed + 10_000_019)
    y = labels(frame, seed)
    X_train, X_test, y_train, y_test = train_test_split(
        frame, y, test_size=0.25, random_state=seed, stratify=y
    )
    numeric = [*FLOATS, *INTS, *BOOLS]
    encode = ColumnTransformer(
        [
            (
                "categorical",
                OrdinalEncoder(handle_unknown="use_encoded_value", unknown_value=np.nan),
                list(STRINGS),
            ),
            ("numeric", "passthrough", numeric),
        ]
    )
    model = Pipeline(
        [
            ("features", encode),
            (
                "classifier",
                HistGradientBoostingClassifier(
                    max_iter=iterations,
                    early_stopping=False,
                    categorical_features=list(range(len(STRINGS))),
                    random_state=seed,
                ),
            ),
        ]
    ).fit(X_train, y_train)
    auc = float(roc_auc_score(y_test, model.predict_proba(X_test)[:, 1]))
    version = log_classifier(
        model,
        X_train,
        auc=auc,
        name=MODEL_NAME,
        alias=MODEL_ALIAS,
        experiment="streamer-throughput",
        artifact_root=str(work_dir / "artifacts"),
    )
    local = work_dir / "model"
    with contextlib.suppress(FileNotFoundError):
        import shutil

        shutil.rmtree(local)
    local.mkdir()
    path = mlflow.artifacts.download_artifacts(
        artifact_uri=f"models:/{MODEL_NAME}/{version}", dst_path=str(local)
    )
    return BenchModel(
        uri=f"models:/{MODEL_NAME}@{MODEL_ALIAS}",
        tracking_uri=tracking_uri,
        version=version,
        local_path=str(path),
        auc=auc,
    )
