import datetime as dt
import json

import numpy as np
import pytest
from pandas import testing as pd_testing
from pyspark.sql import types as T

from streamer.scoring.parse import RecordParser
from streamer.scoring.records import REASONS, Reason

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
    not_parse_reasons = {Reason.MODEL_ERROR.value, Reason.NO_MODEL_FOR_GROUP.value}
    assert covered == set(REASONS) - not_parse_reasons


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


WIDE = T.StructType(
    [
        *SCHEMA.fields,
        T.StructField("maybe_count", T.IntegerType(), True),
        T.StructField("maybe_ratio", T.FloatType(), True),
        T.StructField("at", T.TimestampType(), True),
        T.StructField("blob", T.BinaryType(), True),
        T.StructField("tags", T.ArrayType(T.StringType()), True),
    ]
)
CHOICES = {
    "amount ($)": [12.5, 7, -0.0, 1e308, 1e400, 10**400, "1", None, True],
    "hour": [3, -(2**31), 2**31 - 1, 2**31, 10**30, 3.0, False, None, "3"],
    "count": [2**40, 2**63 - 1, 2**63, -(2**63), 1.5, None],
    "ratio": [0.25, 3, 3.5e38, 1e39, -1e39, None, [1]],
    "present": [True, False, 0, None, "true"],
    "category": ["grocery", "", "é", 1, None, {"a": 1}],
    "note": ["x", None, 2, "\ud800", [[[[[[[[[[1]]]]]]]]]] * 30],
    "maybe_count": [1, None, 2**31, 2.5],
    "maybe_ratio": [0.5, None, 7, 1e39, "x"],
    "at": ["2026-01-01T00:00:00", "2026-01-01T00:00:00+02:00", "noon", 5, None],
    "blob": ["aGk=", "not base64!", None],
    "tags": [["a", "b"], [], ["a", None], "a", None],
}


RAW = [
    b"[1]",
    b"",
    None,
    b'{"amount ($)": NaN}',
    b"\xff{}",
    b"\xef\xbb\xbf{}",
    b'{"x": ' + b"[" * 990 + b"]" * 990 + b"}",
    b'{"hour": 1, "hour": 2}',
]


def _row_by_row(parser, values):
    """What parse() must return: each value through parse_one, in order."""
    rows, positions, rejects = [], [], []
    for i, value in enumerate(values):
        try:
            rows.append(parser.parse_one(value))
        except Exception as exc:
            rejects.append((i, exc.reason, str(exc)))
        else:
            positions.append(i)
    columns = list(zip(*rows)) if rows else [() for _ in parser.schema.fields]
    return parser._frame(columns), positions, rejects


@pytest.mark.parametrize("bad_share", [0.0, 0.02, 0.5])
def test_batch_parse_matches_row_by_row_rules(bad_share):
    """The column-at-a-time fast path accepts, rejects and types exactly like the row rules."""
    rng = np.random.default_rng(int(bad_share * 100))
    parser = RecordParser(WIDE, max_record_bytes=4096)
    for _ in range(40):
        values = []
        for _ in range(int(rng.integers(1, 30))):
            record = {name: options[0] for name, options in CHOICES.items()}
            if rng.random() < bad_share:
                name = list(CHOICES)[int(rng.integers(len(CHOICES)))]
                options = CHOICES[name]
                record[name] = options[int(rng.integers(len(options)))]
                if rng.random() < 0.2:
                    del record[name]
            value = json.dumps(record).encode()
            if rng.random() < bad_share / 4:
                value = RAW[int(rng.integers(len(RAW)))]
            values.append(value)
        result = parser.parse(values)
        frame, positions, rejects = _row_by_row(parser, values)
        assert result.rejects == rejects
        assert result.positions.tolist() == positions
        pd_testing.assert_frame_equal(result.frame, frame)


def test_a_variant_field_keeps_integers_beyond_64_bits_exact():
    """orjson would read 2**70 as a float; the parser must give what json gives."""
    schema = T.StructType([T.StructField("x", T.VariantType(), False)])
    result = RecordParser(schema, 4096).parse([b'{"x": 1180591620717411303424}'])
    assert result.frame["x"].tolist() == [2**70]
    assert type(result.frame["x"][0]) is int
