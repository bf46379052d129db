"""Driver-side model resolution against a real (sqlite) MLflow registry."""

from __future__ import annotations

import uuid
from pathlib import Path

import mlflow
import pytest
from pyspark.sql import types as T

from streamer.errors import ModelError
from streamer.scoring.model import resolve_model
from tests.integration.models import register_classifier

pytestmark = pytest.mark.integration


def _resolve(uri, registered, tmp_path, **kwargs):
    return resolve_model(
        uri, tracking_uri=registered.tracking_uri, work_dir=str(tmp_path), **kwargs
    )


def test_alias_is_pinned_to_its_version(fraud_classifier, tmp_path):
    spec = _resolve(
        fraud_classifier.uri, fraud_classifier, tmp_path, threshold=0.5, score_column="1"
    )
    assert spec.pinned_uri == f"models:/{fraud_classifier.name}/{fraud_classifier.version}"
    assert (spec.name, spec.version) == (fraud_classifier.name, fraud_classifier.version)
    assert spec.output_columns == ("0", "1")
    assert spec.input_schema.names[:2] == ["amount ($)", "merchant category"]
    assert (Path(spec.local_path) / "MLmodel").exists()


@pytest.fixture(scope="module")
def radius_classifier(tracking_uri, mlflow_root):
    """The classifier with one more input: ``mean radius``, float32, a space in its name."""
    name = f"radius-{uuid.uuid4().hex[:6]}"
    return register_classifier(
        tracking_uri, str(mlflow_root / "artifacts"), name, float_feature="mean radius"
    )


def test_input_schema_is_the_signature_verbatim(radius_classifier, tmp_path):
    spec = _resolve(radius_classifier.uri, radius_classifier, tmp_path)
    fields = [(f.name, f.dataType, f.nullable) for f in spec.input_schema.fields]
    assert fields == [
        ("amount ($)", T.DoubleType(), False),
        ("merchant category", T.StringType(), False),
        ("hour", T.IntegerType(), False),
        ("distance.km", T.DoubleType(), False),
        ("txn_last_hour", T.LongType(), False),
        ("card present?", T.BooleanType(), False),
        ("mean radius", T.FloatType(), False),
    ]
    assert spec.output_columns == ("0", "1")


@pytest.mark.parametrize("suffix", ["/{version}", "/latest"])
def test_version_and_latest(fraud_classifier, tmp_path, suffix):
    uri = f"models:/{fraud_classifier.name}" + suffix.format(version=fraud_classifier.version)
    spec = _resolve(uri, fraud_classifier, tmp_path)
    assert spec.version == fraud_classifier.version


def test_runs_uri_and_plain_path(fraud_classifier, tmp_path):
    client = mlflow.MlflowClient(tracking_uri=fraud_classifier.tracking_uri)
    version = client.get_model_version(fraud_classifier.name, fraud_classifier.version)
    spec = _resolve(f"runs:/{version.run_id}/model", fraud_classifier, tmp_path / "a")
    assert (spec.name, spec.version) == ("model", version.run_id)
    path_spec = _resolve(spec.local_path, fraud_classifier, tmp_path / "b")
    assert path_spec.version is None and path_spec.input_schema == spec.input_schema


def test_regressor_output_is_a_single_value(amount_regressor, tmp_path):
    spec = _resolve(amount_regressor.uri, amount_regressor, tmp_path, threshold=10.0)
    assert spec.output_columns is None


def test_threshold_on_multi_column_output_needs_score_column(fraud_classifier, tmp_path):
    with pytest.raises(ModelError, match=r"set model\.score_column"):
        _resolve(fraud_classifier.uri, fraud_classifier, tmp_path, threshold=0.5)
    with pytest.raises(ModelError, match=r"model.score_column = 'p' is not among"):
        _resolve(fraud_classifier.uri, fraud_classifier, tmp_path, threshold=0.5, score_column="p")


def test_unknown_model_and_alias_fail_clearly(fraud_classifier, tmp_path):
    with pytest.raises(ModelError, match=r"cannot resolve model\.uri = 'models:/no-such-model@x'"):
        _resolve("models:/no-such-model@x", fraud_classifier, tmp_path)
    with pytest.raises(ModelError, match="cannot resolve"):
        _resolve(f"models:/{fraud_classifier.name}@nope", fraud_classifier, tmp_path)
