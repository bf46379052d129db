"""What makes a new model version unfit to replace the served one mid-stream."""

from pyspark.sql import types as T

from streamer.scoring.model import ModelSpec, incompatibilities


def _spec(fields, outputs=("0", "1")) -> ModelSpec:
    schema = T.StructType([T.StructField(n, t, nullable) for n, t, nullable in fields])
    return ModelSpec("u", "p", "n", "1", "/tmp/x", schema, outputs)


CURRENT = _spec(
    [
        ("amount", T.DoubleType(), False),
        ("hour", T.IntegerType(), False),
        ("note", T.StringType(), True),
    ]
)


def test_same_or_fewer_inputs_are_compatible():
    assert incompatibilities(CURRENT, CURRENT) == []
    assert incompatibilities(CURRENT, _spec([("amount", T.DoubleType(), False)])) == []
    assert incompatibilities(CURRENT, _spec([("note", T.StringType(), True)])) == []


def test_new_input_other_type_tighter_requirement_and_output_shape_are_refused():
    candidate = _spec(
        [
            ("amount", T.StringType(), False),
            ("device id", T.StringType(), False),
            ("note", T.StringType(), False),
        ],
        outputs=None,
    )
    problems = incompatibilities(CURRENT, candidate)
    assert problems == [
        "input 'amount' is string, was double",
        "input 'device id' (string) is not read today",
        "input 'note' is required, was optional",
        "output shape changed between one value and several columns",
    ]
    other_columns = _spec([("amount", T.DoubleType(), False)], outputs=("no", "yes"))
    assert incompatibilities(CURRENT, other_columns) == [
        "output columns ['no', 'yes'], were ['0', '1']"
    ]
