"""JSON record values → a typed pandas frame of model inputs, plus reasons for the rest.

The parser is compiled once from the Spark input schema (see :mod:`.schema`). It is strict
on purpose, because a silently coerced feature gives a wrong score nobody notices:

- the value must be UTF-8 JSON (RFC 8259: no ``NaN``/``Infinity``) holding one object;
- every required field must be present and not null; optional fields may be absent or null;
- extra fields are ignored (events usually carry ids and metadata the model does not use);
- integers must be JSON integers in range (``3.0`` is not an integer), floating fields take
  any JSON number, booleans only ``true``/``false``, strings only strings, binary a base64
  string, datetimes an ISO-8601 string (naive means UTC), arrays/objects/maps recursively.

Each record that breaks a rule (:mod:`.rules`) gets exactly one :class:`.records.Reason`
and a message naming the field. The pandas dtypes match MLflow's schema enforcement (int32
for ``integer``, float32 for ``float``, ...), so pyfunc does not reject or silently cast the
frame.
"""

from __future__ import annotations

import json
import operator
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import orjson
import pandas as pd
from pyspark.sql import types as T

from streamer.scoring.records import Reason
from streamer.scoring.rules import (
    FieldError,
    check_column,
    compile_struct,
    has_variant,
    type_name,
)


def _reject_constant(name: str) -> Any:
    raise FieldError(Reason.NON_FINITE_NUMBER, f"{name} is not valid JSON (RFC 8259)")


_PANDAS_DTYPES: dict[type, str] = {
    T.BooleanType: "bool",
    T.IntegerType: "int32",
    T.LongType: "int64",
    T.FloatType: "float32",
    T.DoubleType: "float64",
    T.TimestampType: "datetime64[ns]",
}


@dataclass
class ParseResult:
    """The good rows as a model-ready frame, their positions in the input, and the rejects."""

    frame: pd.DataFrame
    positions: np.ndarray
    rejects: list[tuple[int, Reason, str]] = field(default_factory=list)


class RecordParser:
    """Parses batches of raw Kafka values against one input schema. Picklable."""

    def __init__(self, schema: T.StructType, max_record_bytes: int) -> None:
        self.schema = schema
        self.max_record_bytes = max_record_bytes
        self._struct = compile_struct(schema)
        # orjson reads an integer beyond 64 bits as a float; only a variant field would
        # keep that value instead of judging it, so such schemas stay on the row rules.
        self._fast = not has_variant(schema)

    def __getstate__(self) -> dict[str, Any]:
        return {"schema": self.schema.json(), "max_record_bytes": self.max_record_bytes}

    def __setstate__(self, state: dict[str, Any]) -> None:
        schema = T.StructType.fromJson(json.loads(state["schema"]))
        self.__init__(schema, state["max_record_bytes"])  # type: ignore[misc]

    def load(self, value: bytes | None) -> dict[str, Any]:
        """The record's JSON object, or :class:`FieldError` when it is not one."""
        if not value:
            raise FieldError(Reason.EMPTY_VALUE, "the record has no value (null or empty)")
        if len(value) > self.max_record_bytes:
            raise FieldError(
                Reason.TOO_LARGE,
                f"the value is {len(value)} bytes; the limit (parse.max_record_bytes) is "
                f"{self.max_record_bytes}",
            )
        try:
            text = value.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise FieldError(Reason.INVALID_UTF8, f"the value is not UTF-8: {exc}") from exc
        try:
            obj = json.loads(text, parse_constant=_reject_constant)
        except ValueError as exc:  # JSONDecodeError, or an integer too long to convert
            raise FieldError(Reason.INVALID_JSON, f"invalid JSON: {exc}") from exc
        except RecursionError as exc:
            raise FieldError(Reason.INVALID_JSON, "invalid JSON: nested too deeply") from exc
        if type(obj) is not dict:
            raise FieldError(Reason.NOT_AN_OBJECT, f"expected a JSON object, got {type_name(obj)}")
        return obj

    def parse_one(self, value: bytes | None) -> list[Any]:
        """The row's values in schema order, or :class:`FieldError` with the reason."""
        return self._struct.values(self.load(value))

    def parse(self, values: Sequence[bytes | None]) -> ParseResult:
        """Parse a batch; every input position ends up in exactly one of frame or rejects.

        The fast path decodes with orjson and checks the objects a column at a time
        (:meth:`_columns`); a record orjson refuses is decoded by the standard library, whose
        verdict and message are the contract. When any field of any record breaks a rule,
        the whole batch goes through the row-by-row rules instead, which name each bad
        row's first broken field. Both paths accept and reject exactly the same records with
        the same values: orjson reads an integer beyond 64 bits as a float, which only the
        row path can judge, and a float column's value is the same either way.
        """
        fast = self._parse_columns(values) if self._fast else None
        return fast if fast is not None else self._parse_rows(values)

    def _parse_columns(self, values: Sequence[bytes | None]) -> ParseResult | None:
        objects = self._load_all(values)
        if objects is not None:
            columns = self._columns(objects)
            if columns is None:
                return None
            return ParseResult(self._frame(columns), np.arange(len(values)), [])
        objects = []
        positions: list[int] = []
        rejects: list[tuple[int, Reason, str]] = []
        limit = self.max_record_bytes
        for i, value in enumerate(values):
            obj: Any = None
            # orjson nests to 1024 levels, the standard library to the recursion limit;
            # a record that may nest deeply is left to the standard library.
            if value and len(value) <= limit and value.count(b"[") + value.count(b"{") < 256:
                try:  # noqa: SIM105 (contextlib.suppress costs more, once per record)
                    obj = orjson.loads(value)
                except orjson.JSONDecodeError:
                    pass
            if type(obj) is not dict:
                try:
                    obj = self.load(value)
                except FieldError as exc:
                    rejects.append((i, exc.reason, str(exc)))
                    continue
            objects.append(obj)
            positions.append(i)
        columns = self._columns(objects)
        if columns is None:
            return None
        return ParseResult(self._frame(columns), np.asarray(positions, dtype=np.int64), rejects)

    def _load_all(self, values: Sequence[bytes | None]) -> list[dict[str, Any]] | None:
        """Every value's object, when every value is a JSON object orjson reads and none can
        nest deeply (a value of at most ``_SHALLOW`` bytes nests less than half that); else
        None. One call per record, with no Python code between them."""
        if not values or None in values:
            return None
        lengths = list(map(len, values))  # type: ignore[arg-type]  # no None: checked above
        if min(lengths) == 0 or max(lengths) > min(self.max_record_bytes, _SHALLOW):
            return None
        try:
            objects = list(map(orjson.loads, values))  # type: ignore[arg-type]
        except orjson.JSONDecodeError:
            return None
        return objects if set(map(type, objects)) == {dict} else None

    def _parse_rows(self, values: Sequence[bytes | None]) -> ParseResult:
        rows: list[list[Any]] = []
        positions: list[int] = []
        rejects: list[tuple[int, Reason, str]] = []
        for i, value in enumerate(values):
            try:
                rows.append(self.parse_one(value))
            except FieldError as exc:
                rejects.append((i, exc.reason, str(exc)))
            else:
                positions.append(i)
        columns: list[Sequence[Any]] = (
            list(zip(*rows)) if rows else [() for _ in self.schema.fields]
        )
        return ParseResult(self._frame(columns), np.asarray(positions, dtype=np.int64), rejects)

    def _columns(self, objects: list[dict[str, Any]]) -> list[Sequence[Any]] | None:
        """Every field's values, when every object passes every rule; else None."""
        names = self._struct.names
        if len(names) == 1:
            rows: list[tuple[Any, ...]] = [(obj.get(names[0]),) for obj in objects]
        else:
            try:
                rows = list(map(operator.itemgetter(*names), objects))
            except KeyError:  # a field is absent somewhere: absent reads as null
                rows = [tuple(obj.get(name) for name in names) for obj in objects]
        transposed = list(zip(*rows)) if rows else [() for _ in names]
        columns: list[Sequence[Any]] = []
        for f, required, validate, values in zip(
            self.schema.fields, self._struct.required, self._struct.validators, transposed
        ):
            checked = check_column(f.dataType, values, required, validate)
            if checked is None:
                return None
            columns.append(checked)
        return columns

    def _frame(self, columns: list[Sequence[Any]]) -> pd.DataFrame:
        data = {}
        for f, values in zip(self.schema.fields, columns):
            dtype = _PANDAS_DTYPES.get(type(f.dataType))
            has_null = None in values  # C speed: identity first, then == (False for None)
            if dtype is None or (has_null and dtype not in ("float32", "float64")):
                series = pd.Series(list(values), dtype=object)
            else:
                series = pd.Series(
                    [np.nan if v is None else v for v in values] if has_null else list(values),
                    dtype=dtype,
                )
            data[f.name] = series
        return pd.DataFrame(data, columns=[f.name for f in self.schema.fields])


_SHALLOW = 1536
"""Values up to this size go to orjson without counting brackets: they nest at most 768
levels, within both orjson's limit (1024) and the standard library's (the recursion limit)."""
