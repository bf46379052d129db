"""Real sklearn models registered in a real (sqlite) MLflow registry, for integration tests."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from streamer.tools.train import use_experiment

CATEGORIES = ["grocery", "travel", "electronics", "restaurant", "fuel"]


def feature_frame(n: int, seed: int = 0) -> pd.DataFrame:
    """Card-transaction-like features with awkward column names and several dtypes."""
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "amount ($)": np.round(rng.lognormal(3.5, 1.0, n), 2),
            "merchant category": rng.choice(CATEGORIES, n),
            "hour": rng.integers(0, 24, n).astype("int32"),
            "distance.km": np.round(rng.exponential(10, n), 3),
            "txn_last_hour": rng.integers(0, 8, n).astype("int64"),
            "card present?": rng.random(n) < 0.7,
        }
    )


def fraud_labels(frame: pd.DataFrame, seed: int = 1) -> np.ndarray:
    rng = np.random.default_rng(seed)
    risk = (
        (frame["amount ($)"] > 150).astype(int)
        + (frame["distance.km"] > 25).astype(int)
        + (~frame["card present?"]).astype(int)
        + (frame["hour"] < 5).astype(int)
    )
    return ((risk >= 2) | (rng.random(len(frame)) < 0.02)).astype(int).to_numpy()


@dataclass(frozen=True)
class RegisteredModel:
    name: str
    version: str
    uri: str
    tracking_uri: str


def log_sklearn(
    tracking_uri: str,
    artifact_root: str,
    name: str,
    model,
    X: pd.DataFrame,
    *,
    predict_fn: str = "predict",
    alias: str | None = None,
) -> str:
    """Log ``model`` (fitted on ``X``) with its signature and an input example, register it
    as ``name``, point ``alias`` at it when given; the registered version."""
    import mlflow
    import mlflow.sklearn
    from mlflow.models import infer_signature

    mlflow.set_tracking_uri(tracking_uri)
    use_experiment("streamer-tests", artifact_root)
    with mlflow.start_run():
        info = mlflow.sklearn.log_model(
            model,
            name="model",
            signature=infer_signature(X, getattr(model, predict_fn)(X)),
            input_example=X.head(5),
            serialization_format="cloudpickle",
            pyfunc_predict_fn=predict_fn,
            registered_model_name=name,
        )
    version = str(info.registered_model_version)
    if alias is not None:
        mlflow.MlflowClient(tracking_uri=tracking_uri).set_registered_model_alias(
            name, alias, version
        )
    return version


def register_classifier(
    tracking_uri: str,
    artifact_root: str,
    name: str,
    alias: str | None = "champion",
    *,
    seed: int = 0,
    extra_column: str | None = None,
    float_feature: str | None = None,
) -> RegisteredModel:
    """A OneHot + LogisticRegression pipeline whose pyfunc returns class probabilities.

    ``handle_unknown="error"`` is deliberate: an unseen merchant category makes ``predict``
    raise, which is how tests produce a record that parses but cannot be scored. ``seed``
    changes the training sample (another version of the same model); ``extra_column`` adds
    a required string input the events do not carry (an incompatible version);
    ``float_feature`` adds a float32 input (signature type ``float``) the model scales and
    uses, under that name verbatim.
    """
    from sklearn.compose import ColumnTransformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    X = feature_frame(2000, seed=seed)
    y = fraud_labels(X)
    numeric = ["amount ($)", "hour", "distance.km", "txn_last_hour", "card present?"]
    if extra_column is not None:
        X[extra_column] = "x"
    if float_feature is not None:
        X[float_feature] = (X["distance.km"] * 0.5).astype("float32")
        numeric.append(float_feature)
    model = Pipeline(
        [
            (
                "features",
                ColumnTransformer(
                    [
                        ("cat", OneHotEncoder(handle_unknown="error"), ["merchant category"]),
                        ("num", StandardScaler(), numeric),
                    ]
                ),
            ),
            ("clf", LogisticRegression(max_iter=500)),
        ]
    ).fit(X, y)
    version = log_sklearn(
        tracking_uri, artifact_root, name, model, X, predict_fn="predict_proba", alias=alias
    )
    if alias is None:
        return RegisteredModel(name, version, f"models:/{name}/{version}", tracking_uri)
    return RegisteredModel(name, version, f"models:/{name}@{alias}", tracking_uri)


def register_regressor(tracking_uri: str, artifact_root: str, name: str) -> RegisteredModel:
    """A gradient-boosted regressor on the numeric features: one value per row."""
    from sklearn.ensemble import GradientBoostingRegressor

    X = feature_frame(1000).drop(columns=["merchant category"])
    y = X["amount ($)"] * 0.1 + X["distance.km"]
    model = GradientBoostingRegressor(n_estimators=20).fit(X, y)
    version = log_sklearn(tracking_uri, artifact_root, name, model, X)
    return RegisteredModel(name, version, f"models:/{name}/{version}", tracking_uri)


def event_records(n: int, seed: int = 0, prefix: str = "e") -> list[tuple[bytes, bytes]]:
    """``n`` (key, JSON value) events for the classifier, keyed ``<prefix>-<i>``."""
    import json

    rows = feature_frame(n, seed=seed).to_dict(orient="records")
    return [
        (
            f"{prefix}-{i}".encode(),
            json.dumps({k: (v.item() if hasattr(v, "item") else v) for k, v in r.items()}).encode(),
        )
        for i, r in enumerate(rows)
    ]
