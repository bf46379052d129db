import datetime as dt
import json

import numpy as np
import pytest
from pyspark.sql import types as T

from streamer.scoring.parse import REASONS, Reason, RecordParser

SCHEMA = T.StructType(
    [
        T.StructField("amount ($)", T.DoubleType(), False),
        T.StructField("hour", T.IntegerType(), False),
        T.StructField("count", T.LongType(), False),
        T.StructField("ratio", T.FloatType(), False),
        T.StructField("present", T.BooleanType(), False),
        T.StructField("category", T.StringType(), False),
        T.StructField("note", T.StringType(), True),
    ]
)

GOOD = {
    "amount ($)": 12.5,
    "hour": 3,
    "count": 2**40,
    "ratio": 0.25,
    "present": True,
    "category": "grocery",
    "event_id": "ignored extra field",
}


def _enc(obj):
    return json.dumps(obj).encode()


@pytest.fixture(scope="module")
def parser():
    return RecordParser(SCHEMA, max_record_bytes=4096)


def test_good_records_become_a_typed_frame(parser):
    result = parser.parse([_enc(GOOD), _enc({**GOOD, "amount ($)": 7, "note": "x"})])
    assert result.rejects == []
    assert result.positions.tolist() == [0, 1]
    frame = result.frame
    assert list(frame.columns) == [f.name for f in SCHEMA.fields]
    assert str(frame["amount ($)"].dtype) == "float64"
    assert str(frame["hour"].dtype) == "int32"
    assert str(frame["count"].dtype) == "int64"
    assert str(frame["ratio"].dtype) == "float32"
    assert str(frame["present"].dtype) == "bool"
    assert frame["amount ($)"].tolist() == [12.5, 7.0]
    assert frame["note"].tolist() == [None, "x"]


BAD = [
    (None, Reason.EMPTY_VALUE),
    (b"", Reason.EMPTY_VALUE),
    (b"\xff\xfe{}", Reason.INVALID_UTF8),
    (b'{"amount ($)": ', Reason.INVALID_JSON),
    (b"{'single': 'quotes'}", Reason.INVALID_JSON),
    (b"1" * 5000, Reason.TOO_LARGE),
    (_enc(GOOD).replace(b"12.5", b"NaN"), Reason.NON_FINITE_NUMBER),
    (b"[1, 2, 3]", Reason.NOT_AN_OBJECT),
    (b'"just a string"', Reason.NOT_AN_OBJECT),
    (_enc({k: v for k, v in GOOD.items() if k != "hour"}), Reason.MISSING_FIELD),
    (_enc({**GOOD, "hour": None}), Reason.NULL_FIELD),
    (_enc({**GOOD, "amount ($)": "12.5"}), Reason.WRONG_TYPE),
    (_enc({**GOOD, "hour": 3.0}), Reason.WRONG_TYPE),
    (_enc({**GOOD, "present": 1}), Reason.WRONG_TYPE),
    (_enc({**GOOD, "category": 5}), Reason.WRONG_TYPE),
    (_enc({**GOOD, "amount ($)": True}), Reason.WRONG_TYPE),
    (_enc({**GOOD, "hour": 2**31}), Reason.OUT_OF_RANGE),
    (_enc({**GOOD, "count": 2**63}), Reason.OUT_OF_RANGE),
    (_enc({**GOOD, "ratio": 1e39}), Reason.OUT_OF_RANGE),
    (_enc(GOOD).replace(b"12.5", b"1e999"), Reason.OUT_OF_RANGE),
]


@pytest.mark.parametrize("value,reason", BAD)
def test_each_bad_record_gets_its_reason(parser, value, reason):
    result = parser.parse([_enc(GOOD), value, _enc(GOOD)])
    assert result.positions.tolist() == [0, 2]
    assert [(pos, r) for pos, r, _ in result.rejects] == [(1, reason)]


def test_bad_record_kinds_cover_every_input_reason():
    covered = {r.value for _, r in BAD}
    assert covered == set(REASONS) - {Reason.MODEL_ERROR.value}


def test_messages_name_the_field(parser):
    result = parser.parse([_enc({**GOOD, "amount ($)": "x"})])
    assert "'amount ($)'" in result.rejects[0][2]
    assert "expected a number, got string" in result.rejects[0][2]


def test_nested_types_and_datetimes():
    schema = T.StructType(
        [
            T.StructField("when", T.TimestampType(), False),
            T.StructField("history", T.ArrayType(T.DoubleType(), False), False),
            T.StructField(
                "m",
                T.StructType(
                    [
                        T.StructField("id", T.LongType(), False),
                        T.StructField("tag", T.StringType(), True),
                    ]
                ),
                False,
            ),
            T.StructField("counts", T.MapType(T.StringType(), T.IntegerType(), False), False),
            T.StructField("blob", T.BinaryType(), False),
            T.StructField("anything", T.VariantType(), True),
        ]
    )
    parser = RecordParser(schema, 4096)
    good = {
        "when": "2026-01-02T03:04:05+01:00",
        "history": [1, 2.5],
        "m": {"id": 7},
        "counts": {"a": 1},
        "blob": "aGk=",
        "anything": [1, {"x": None}],
    }
    result = parser.parse(
        [
            _enc(good),
            _enc({**good, "history": [1, "2"]}),
            _enc({**good, "m": {"tag": "no id"}}),
            _enc({**good, "counts": {"a": 1.5}}),
            _enc({**good, "when": "yesterday"}),
            _enc({**good, "blob": "not base64!"}),
            _enc({**good, "history": [1, None]}),
        ]
    )
    assert [(p, r) for p, r, _ in result.rejects] == [
        (1, Reason.WRONG_TYPE),
        (2, Reason.MISSING_FIELD),
        (3, Reason.WRONG_TYPE),
        (4, Reason.WRONG_TYPE),
        (5, Reason.WRONG_TYPE),
        (6, Reason.NULL_FIELD),
    ]
    row = result.frame.iloc[0]
    assert row["when"] == dt.datetime(2026, 1, 2, 2, 4, 5)
    assert row["history"] == [1.0, 2.5]
    assert row["m"] == {"id": 7, "tag": None}
    assert row["blob"] == b"hi"
    assert "'m.id'" in result.rejects[1][2]
    assert "history[1]" in result.rejects[0][2]


def test_optional_float_missing_becomes_nan():
    schema = T.StructType([T.StructField("x", T.DoubleType(), True)])
    result = RecordParser(schema, 100).parse([b'{"x": 1}', b"{}", b'{"x": null}'])
    values = result.frame["x"].to_numpy()
    assert values[0] == 1.0 and np.isnan(values[1]) and np.isnan(values[2])


def test_parser_is_picklable_and_keeps_behaviour(parser):
    import pickle

    clone = pickle.loads(pickle.dumps(parser))
    assert clone.schema == parser.schema
    result = clone.parse([_enc({**GOOD, "hour": "3"})])
    assert result.rejects[0][1] == Reason.WRONG_TYPE


def test_empty_batch(parser):
    result = parser.parse([])
    assert len(result.frame) == 0 and list(result.frame.columns) == SCHEMA.names
