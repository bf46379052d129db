"""What each Spark type accepts in JSON: the parser's per-field rules (see :mod:`.parse`).

Two forms of the same rules: by row (:func:`compile_validator`, one function per field that
names the first broken rule) and by column (:func:`check_column`, one pass over a whole
column that only says whether every value passes).
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from pyspark.sql import types as T

from streamer.scoring.records import Reason


class FieldError(Exception):
    """One field broke a rule; carries the reason code and a message naming the field."""

    def __init__(self, reason: Reason, message: str) -> None:
        super().__init__(message)
        self.reason = reason


_INT_RANGES = {
    "integer": (-(2**31), 2**31 - 1),
    "long": (-(2**63), 2**63 - 1),
}
_FLOAT32_MAX = float(np.finfo(np.float32).max)

Validator = Callable[[Any, str], Any]


def type_name(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def _wrong(path: str, expected: str, value: Any) -> FieldError:
    return FieldError(
        Reason.WRONG_TYPE, f"field {path!r}: expected {expected}, got {type_name(value)}"
    )


def _int_validator(kind: str) -> Validator:
    low, high = _INT_RANGES[kind]

    def check(value: Any, path: str) -> Any:
        if type(value) is not int:
            raise _wrong(path, f"{kind} (a JSON integer)", value)
        if not low <= value <= high:
            raise FieldError(
                Reason.OUT_OF_RANGE, f"field {path!r}: {value} is outside the {kind} range"
            )
        return value

    return check


def _float_validator(single: bool) -> Validator:
    def check(value: Any, path: str) -> Any:
        if type(value) not in (int, float):
            raise _wrong(path, "a number", value)
        try:
            number = float(value)
        except OverflowError:  # a JSON integer beyond any float
            number = math.inf
        if math.isinf(number) or (single and abs(number) > _FLOAT32_MAX):
            raise FieldError(
                Reason.OUT_OF_RANGE,
                f"field {path!r}: {value!r} does not fit a {'float' if single else 'double'}",
            )
        return number

    return check


def _bool(value: Any, path: str) -> Any:
    if type(value) is not bool:
        raise _wrong(path, "a boolean", value)
    return value


def _str(value: Any, path: str) -> Any:
    if type(value) is not str:
        raise _wrong(path, "a string", value)
    return value


def _binary(value: Any, path: str) -> Any:
    if type(value) is not str:
        raise _wrong(path, "a base64 string", value)
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise FieldError(Reason.WRONG_TYPE, f"field {path!r}: not valid base64") from exc


def _datetime(value: Any, path: str) -> Any:
    if type(value) is not str:
        raise _wrong(path, "an ISO-8601 datetime string", value)
    try:
        parsed = dt.datetime.fromisoformat(value)
    except ValueError as exc:
        raise FieldError(
            Reason.WRONG_TYPE, f"field {path!r}: {value!r} is not an ISO-8601 datetime"
        ) from exc
    if parsed.tzinfo is not None:
        parsed = parsed.astimezone(dt.UTC).replace(tzinfo=None)
    return parsed


def _any(value: Any, path: str) -> Any:
    return value


def compile_validator(dtype: T.DataType) -> Validator:
    """A function that checks one JSON value against ``dtype`` and returns the Python value."""
    if isinstance(dtype, T.BooleanType):
        return _bool
    if isinstance(dtype, T.IntegerType):
        return _int_validator("integer")
    if isinstance(dtype, T.LongType):
        return _int_validator("long")
    if isinstance(dtype, T.FloatType):
        return _float_validator(single=True)
    if isinstance(dtype, T.DoubleType):
        return _float_validator(single=False)
    if isinstance(dtype, T.StringType):
        return _str
    if isinstance(dtype, T.BinaryType):
        return _binary
    if isinstance(dtype, T.TimestampType):
        return _datetime
    if isinstance(dtype, T.VariantType):
        return _any
    if isinstance(dtype, T.ArrayType):
        return _array_validator(compile_validator(dtype.elementType))
    if isinstance(dtype, T.MapType):
        return _map_validator(compile_validator(dtype.valueType))
    if isinstance(dtype, T.StructType):
        return _object_validator(compile_struct(dtype))
    raise TypeError(f"no JSON validator for Spark type {dtype.simpleString()}")


def _element(validate: Validator, item: Any, path: str) -> Any:
    """An array element or map value: never null."""
    if item is None:
        raise FieldError(Reason.NULL_FIELD, f"field {path} is null")
    return validate(item, path)


def _array_validator(element: Validator) -> Validator:
    def check_array(value: Any, path: str) -> Any:
        if type(value) is not list:
            raise _wrong(path, "an array", value)
        return [_element(element, item, f"{path}[{i}]") for i, item in enumerate(value)]

    return check_array


def _map_validator(element: Validator) -> Validator:
    def check_map(value: Any, path: str) -> Any:
        if type(value) is not dict:
            raise _wrong(path, "an object (map)", value)
        return {k: _element(element, item, f"{path}.{k}") for k, item in value.items()}

    return check_map


def _object_validator(struct: _Struct) -> Validator:
    def check_object(value: Any, path: str) -> Any:
        if type(value) is not dict:
            raise _wrong(path, "an object", value)
        return dict(zip(struct.names, struct.values(value, prefix=f"{path}.")))

    return check_object


@dataclass(frozen=True)
class _Struct:
    names: tuple[str, ...]
    required: tuple[bool, ...]
    validators: tuple[Validator, ...]

    def values(self, obj: dict[str, Any], prefix: str = "") -> list[Any]:
        out: list[Any] = []
        for name, required, validate in zip(self.names, self.required, self.validators):
            value = obj.get(name)
            if value is None:
                if required:
                    if name in obj:
                        raise FieldError(Reason.NULL_FIELD, f"field {prefix + name!r} is null")
                    raise FieldError(
                        Reason.MISSING_FIELD, f"required field {prefix + name!r} is missing"
                    )
                out.append(None)
            else:
                out.append(validate(value, prefix + name))
        return out


def compile_struct(schema: T.StructType) -> _Struct:
    return _Struct(
        names=tuple(f.name for f in schema.fields),
        required=tuple(not f.nullable for f in schema.fields),
        validators=tuple(compile_validator(f.dataType) for f in schema.fields),
    )


def has_variant(dtype: T.DataType) -> bool:
    if isinstance(dtype, T.VariantType):
        return True
    if isinstance(dtype, T.ArrayType):
        return has_variant(dtype.elementType)
    if isinstance(dtype, T.MapType):
        return has_variant(dtype.valueType)
    if isinstance(dtype, T.StructType):
        return any(has_variant(f.dataType) for f in dtype.fields)
    return False


_NONE = type(None)
_NUMBER_TYPES = {int, float}


def check_column(
    dtype: T.DataType, values: Sequence[Any], required: bool, validate: Validator
) -> Sequence[Any] | None:
    """``values`` as the row rules would return them, or None when any value breaks a rule.

    Simple types are checked with one pass over the value types and, for numbers, numpy
    range checks; other types run their row validator on each value.
    """
    types = set(map(type, values))
    if _NONE in types:
        if required:
            return None
        types.discard(_NONE)
    if isinstance(dtype, T.BooleanType):
        return values if types <= {bool} else None
    if isinstance(dtype, T.StringType):
        return values if types <= {str} else None
    if isinstance(dtype, (T.IntegerType, T.LongType)):
        if not types <= {int}:
            return None
        present = values if required else [v for v in values if v is not None]
        if present:
            low, high = _INT_RANGES["integer" if isinstance(dtype, T.IntegerType) else "long"]
            if min(present) < low or max(present) > high:
                return None
        return values
    if isinstance(dtype, (T.FloatType, T.DoubleType)):
        if not types <= _NUMBER_TYPES:
            return None
        try:
            numbers = np.array(
                [np.nan if v is None else v for v in values] if not required else values,
                dtype=np.float64,
            )
        except OverflowError:  # an integer beyond any float
            return None
        finite = numbers[~np.isnan(numbers)] if not required else numbers
        if np.isinf(finite).any():
            return None
        if isinstance(dtype, T.FloatType) and (np.abs(finite) > _FLOAT32_MAX).any():
            return None
        return values
    out: list[Any] = []
    for value in values:
        if value is None:
            out.append(None)
            continue
        try:
            out.append(validate(value, ""))
        except FieldError:
            return None
    return out
