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


class _Registry:
    """What the follower asks: the alias's current version, and the model it resolves to."""

    def __init__(self, version: str) -> None:
        self.version = version
        self.resolved: list[str] = []

    def peek(self) -> str:
        return f"models:/m/{self.version}"

    def resolve(self) -> ModelSpec:
        self.resolved.append(self.version)
        fields = [("amount", T.DoubleType(), False)]
        if self.version == "3":  # needs an input the events lack
            fields.append(("device id", T.StringType(), False))
        schema = T.StructType([T.StructField(n, t, nullable) for n, t, nullable in fields])
        return ModelSpec(
            "u", f"models:/m/{self.version}", "m", self.version, "/nonexistent", schema, None
        )


def _follower(registry: _Registry, ready: list, refused: list):
    from streamer.scoring.follow import AliasFollower

    return AliasFollower(
        peek=registry.peek,
        resolve=registry.resolve,
        current=registry.resolve(),
        poll_seconds=3600,
        sample=list,
        max_record_bytes=1000,
        on_ready=ready.append,
        on_refused=lambda key, reason: refused.append((key, reason)),
    )


def test_a_refused_version_is_vetted_again_only_after_the_alias_moved_away():
    registry, ready, refused = _Registry("2"), [], []
    follower = _follower(registry, ready, refused)
    assert follower.check() is None and registry.resolved == ["2"], "the current version: no-op"
    registry.version = "3"
    assert follower.check() is None
    assert [key for key, _ in refused] == ["models:/m/3"]
    assert "'device id'" in refused[0][1]
    follower.check()
    assert len(refused) == 1 and registry.resolved == ["2", "3"], "not tried again while there"
    registry.version = "2"
    follower.check()  # back on the current version
    registry.version = "3"
    follower.check()
    assert len(refused) == 2, "moved away and back: vetted again"
    registry.version = "4"
    candidate = follower.check()
    assert candidate is not None and ready == [candidate] and candidate.version == "4"
