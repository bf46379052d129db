"""MLflow model signature → Spark input schema.

Only column-based signatures are accepted: a JSON event maps its fields to named columns.
Every MLflow column type is mapped, nested ones included; ``required=False`` becomes a
nullable field. Names are kept verbatim, so ``mean radius`` or ``amount ($)`` work.
"""

from __future__ import annotations

from typing import Any

from pyspark.sql import types as T

from streamer.errors import ModelError

_PRIMITIVES: dict[str, T.DataType] = {
    "boolean": T.BooleanType(),
    "integer": T.IntegerType(),
    "long": T.LongType(),
    "float": T.FloatType(),
    "double": T.DoubleType(),
    "string": T.StringType(),
    "binary": T.BinaryType(),
    "datetime": T.TimestampType(),
}


def mlflow_type_to_spark(dtype: Any, where: str) -> T.DataType:
    """Map one MLflow schema type (DataType, Array, Object, Map, AnyType) to a Spark type."""
    from mlflow.types.schema import AnyType, Array, DataType, Map, Object

    if isinstance(dtype, DataType):
        return _PRIMITIVES[dtype.name]
    if isinstance(dtype, Array):
        return T.ArrayType(mlflow_type_to_spark(dtype.dtype, f"{where}[]"), containsNull=False)
    if isinstance(dtype, Object):
        return T.StructType(
            [
                T.StructField(
                    p.name,
                    mlflow_type_to_spark(p.dtype, f"{where}.{p.name}"),
                    nullable=not p.required,
                )
                for p in dtype.properties
            ]
        )
    if isinstance(dtype, Map):
        return T.MapType(
            T.StringType(), mlflow_type_to_spark(dtype.value_type, f"{where}{{}}"), False
        )
    if isinstance(dtype, AnyType):
        return T.VariantType()
    raise ModelError(
        f"model signature column {where!r} has type {dtype!r}, which streamer cannot read "
        "from JSON; log the model with a column-based signature of MLflow's JSON-friendly "
        "types (boolean, integer, long, float, double, string, binary, datetime, Array, "
        "Object, Map, Any)"
    )


def signature_to_schema(signature: Any) -> T.StructType:
    """The Spark schema of the model's inputs, one field per signature column, in order."""
    if signature is None or signature.inputs is None:
        raise ModelError(
            "the model has no input signature, so streamer cannot know which JSON fields to "
            "read; log it with signature=mlflow.models.infer_signature(X_sample)"
        )
    inputs = signature.inputs
    if inputs.is_tensor_spec():
        raise ModelError(
            "the model's signature is tensor-based; streamer maps JSON fields to named "
            "columns, so log the model with a column-based signature (a pandas DataFrame sample)"
        )
    fields = []
    for i, col in enumerate(inputs.inputs):
        if not col.name:
            raise ModelError(
                f"signature column {i} has no name; JSON fields can only map to named columns"
            )
        fields.append(
            T.StructField(col.name, mlflow_type_to_spark(col.type, col.name), not col.required)
        )
    names = [f.name for f in fields]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ModelError(f"signature has duplicate column names: {duplicates}")
    return T.StructType(fields)


def sample_value(dtype: T.DataType) -> Any:
    """A JSON value that parses as ``dtype``: zero, empty, false or the epoch."""
    if isinstance(dtype, T.StructType):
        return {f.name: sample_value(f.dataType) for f in dtype.fields}
    if isinstance(dtype, T.ArrayType):
        return [sample_value(dtype.elementType)]
    if isinstance(dtype, T.MapType):
        return {"k": sample_value(dtype.valueType)}
    if isinstance(dtype, T.BooleanType):
        return False
    if isinstance(dtype, (T.IntegerType, T.LongType)):
        return 0
    if isinstance(dtype, (T.FloatType, T.DoubleType)):
        return 0.0
    if isinstance(dtype, T.TimestampType):
        return "1970-01-01T00:00:00Z"
    if isinstance(dtype, T.BinaryType):
        return ""
    return "0"
