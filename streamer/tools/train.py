"""Train the demo fraud model and register it as ``fraud-detector@champion``.

A scikit-learn pipeline with the categorical handling inside the model, logged with a
signature and an input example, and a pyfunc that returns class probabilities: the
output has columns ``"0"`` and ``"1"``, so a threshold applies to ``model.score_column: "1"``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from streamer.tools.synthetic import FEATURES, transactions

log = logging.getLogger(__name__)


def use_experiment(name: str, artifact_root: str | None) -> None:
    """Make ``name`` the active experiment, creating it with ``artifact_root`` if given."""
    import mlflow

    if artifact_root and mlflow.get_experiment_by_name(name) is None:
        mlflow.create_experiment(name, artifact_location=artifact_root)
    mlflow.set_experiment(name)


@dataclass(frozen=True)
class TrainedModel:
    name: str
    version: str
    uri: str
    auc: float


def log_classifier(
    model: Any,
    X_train: Any,
    *,
    auc: float,
    name: str,
    alias: str,
    experiment: str,
    artifact_root: str | None,
) -> str:
    """Log a fitted sklearn classifier as a pyfunc returning class probabilities (signature
    and input example from ``X_train``), register it as ``name@alias``; its version."""
    import mlflow
    import mlflow.sklearn
    from mlflow.models import infer_signature

    use_experiment(experiment, artifact_root)
    with mlflow.start_run(run_name=name):
        mlflow.log_metric("test_auc", auc)
        info = mlflow.sklearn.log_model(
            model,
            name="model",
            signature=infer_signature(X_train.head(100), model.predict_proba(X_train.head(100))),
            input_example=X_train.head(5),
            serialization_format="cloudpickle",
            pyfunc_predict_fn="predict_proba",
            registered_model_name=name,
        )
    version = str(info.registered_model_version)
    mlflow.MlflowClient().set_registered_model_alias(name, alias, version)
    return version


def train_and_register(
    tracking_uri: str | None,
    *,
    name: str = "fraud-detector",
    alias: str = "champion",
    rows: int = 20_000,
    seed: int = 0,
    artifact_root: str | None = None,
) -> TrainedModel:
    """Train, log and register. ``artifact_root`` keeps artifacts out of ``./mlruns``."""
    import mlflow
    from sklearn.compose import ColumnTransformer
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import train_test_split
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder

    if tracking_uri:
        mlflow.set_tracking_uri(tracking_uri)
    frame, fraud = transactions(rows, seed)
    X = frame[list(FEATURES)]
    X_train, X_test, y_train, y_test = train_test_split(
        X, fraud, test_size=0.25, random_state=seed, stratify=fraud
    )
    numeric = [c for c in FEATURES if c != "merchant_category"]
    model = Pipeline(
        [
            (
                "features",
                ColumnTransformer(
                    [
                        (
                            "category",
                            OneHotEncoder(handle_unknown="ignore", sparse_output=False),
                            ["merchant_category"],
                        ),
                        ("numeric", "passthrough", numeric),
                    ]
                ),
            ),
            ("classifier", HistGradientBoostingClassifier(max_iter=100, random_state=seed)),
        ]
    ).fit(X_train, y_train)
    auc = float(roc_auc_score(y_test, model.predict_proba(X_test)[:, 1]))
    version = log_classifier(
        model,
        X_train,
        auc=auc,
        name=name,
        alias=alias,
        experiment="streamer-fraud",
        artifact_root=artifact_root,
    )
    log.info(
        'model registered name="%s" version="%s" alias="%s" auc="%.3f"', name, version, alias, auc
    )
    return TrainedModel(name, version, f"models:/{name}@{alias}", auc)
