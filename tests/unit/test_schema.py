import numpy as np
import pytest
from mlflow.models.signature import ModelSignature
from mlflow.types.schema import AnyType, Array, ColSpec, Map, Object, Property, Schema, TensorSpec
from pyspark.sql import types as T

from streamer.errors import ModelError
from streamer.scoring.schema import signature_to_schema


def _sig(*cols):
    return ModelSignature(inputs=Schema(list(cols)))


def test_every_primitive_type_and_awkward_names():
    sig = _sig(
        ColSpec("boolean", "card present?"),
        ColSpec("integer", "hour"),
        ColSpec("long", "txn.count"),
        ColSpec("float", "mean radius"),
        ColSpec("double", "amount ($)"),
        ColSpec("string", "merchant-category"),
        ColSpec("binary", "blob"),
        ColSpec("datetime", "ts`odd"),
    )
    schema = signature_to_schema(sig)
    assert [(f.name, f.dataType, f.nullable) for f in schema.fields] == [
        ("card present?", T.BooleanType(), False),
        ("hour", T.IntegerType(), False),
        ("txn.count", T.LongType(), False),
        ("mean radius", T.FloatType(), False),
        ("amount ($)", T.DoubleType(), False),
        ("merchant-category", T.StringType(), False),
        ("blob", T.BinaryType(), False),
        ("ts`odd", T.TimestampType(), False),
    ]


def test_optional_columns_are_nullable():
    schema = signature_to_schema(_sig(ColSpec("double", "a", required=False)))
    assert schema.fields[0].nullable is True


def test_nested_types():
    sig = _sig(
        ColSpec(Array("double"), "history"),
        ColSpec(Object([Property("id", "long"), Property("tag", "string", required=False)]), "m"),
        ColSpec(Map("integer"), "counts"),
        ColSpec(AnyType(), "anything"),
        ColSpec(Array(Array("string")), "grid"),
    )
    schema = signature_to_schema(sig)
    types = {f.name: f.dataType for f in schema.fields}
    assert types["history"] == T.ArrayType(T.DoubleType(), False)
    assert types["m"] == T.StructType(
        [T.StructField("id", T.LongType(), False), T.StructField("tag", T.StringType(), True)]
    )
    assert types["counts"] == T.MapType(T.StringType(), T.IntegerType(), False)
    assert types["anything"] == T.VariantType()
    assert types["grid"] == T.ArrayType(T.ArrayType(T.StringType(), False), False)


def test_schema_round_trips_through_json():
    schema = signature_to_schema(_sig(ColSpec("double", "mean radius"), ColSpec(Map("long"), "m")))
    assert T.StructType.fromJson(schema.jsonValue()) == schema


def test_missing_signature_is_refused():
    with pytest.raises(ModelError, match="no input signature"):
        signature_to_schema(None)


def test_tensor_signature_is_refused():
    sig = ModelSignature(inputs=Schema([TensorSpec(np.dtype("float64"), (-1, 4))]))
    with pytest.raises(ModelError, match="tensor-based"):
        signature_to_schema(sig)


def test_unnamed_column_is_refused():
    with pytest.raises(ModelError, match="has no name"):
        signature_to_schema(_sig(ColSpec("double")))
