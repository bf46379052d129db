import numpy as np
import pandas as pd
import pytest

from streamer.errors import ModelError
from streamer.scoring.model import pin_model_uri
from streamer.scoring.predictions import (
    normalize_predictions,
    predict_isolating,
    scores_for_threshold,
)


@pytest.mark.parametrize(
    "raw",
    [
        np.array([0.1, 0.2]),
        np.array([[0.1], [0.2]]),
        pd.Series([0.1, 0.2]),
        pd.DataFrame({"p": [0.1, 0.2]}),
        [0.1, 0.2],
    ],
)
def test_single_value_outputs(raw):
    values, columns = normalize_predictions(raw, 2)
    assert values == [0.1, 0.2] and columns is None


def test_string_predictions():
    assert normalize_predictions(np.array(["fraud", "ok"]), 2) == (["fraud", "ok"], None)


def test_multi_column_outputs():
    values, columns = normalize_predictions(np.array([[0.9, 0.1], [0.3, 0.7]]), 2)
    assert columns == ("0", "1") and values == [{"0": 0.9, "1": 0.1}, {"0": 0.3, "1": 0.7}]
    values, columns = normalize_predictions(pd.DataFrame({"a": [1, 2], "b": ["x", "y"]}), 2)
    assert columns == ("a", "b") and values == [{"a": 1, "b": "x"}, {"a": 2, "b": "y"}]


def test_wrong_length_is_a_model_error():
    with pytest.raises(ModelError, match="returned 1 predictions for 2 rows"):
        normalize_predictions(np.array([1.0]), 2)


def test_scores_for_threshold():
    assert scores_for_threshold([0.2, 0.8], None).tolist() == [0.2, 0.8]
    scores = scores_for_threshold([{"1": 0.7}, {"1": None}], "1")
    assert scores[0] == 0.7 and np.isnan(scores[1])
    assert np.isnan(scores_for_threshold(["fraud"], None)).all()


class _PickyModel:
    """A real predict function that fails on negative amounts, like a model would."""

    calls = 0

    def predict(self, frame):
        self.calls += 1
        if (frame["x"] < 0).any():
            raise ValueError("negative amount")
        return frame["x"] * 2


def test_predict_isolating_bisects_to_the_failing_rows():
    frame = pd.DataFrame({"x": [1.0, 2.0, -1.0, 3.0, 4.0, -5.0, 6.0, 7.0]})
    model = _PickyModel()
    predictions, failures = predict_isolating(model, frame)
    assert sorted(failures) == [2, 5]
    assert "negative amount" in failures[2]
    assert predictions == {0: 2.0, 1: 4.0, 3: 6.0, 4: 8.0, 6: 12.0, 7: 14.0}


def test_predict_isolating_one_call_when_clean():
    model = _PickyModel()
    predictions, failures = predict_isolating(model, pd.DataFrame({"x": [1.0, 2.0]}))
    assert failures == {} and model.calls == 1 and predictions == {0: 2.0, 1: 4.0}


def test_plain_paths_and_runs_are_pinned_as_given():
    pinned = pin_model_uri("/tmp/models/fraud", client=None)
    assert (pinned.pinned_uri, pinned.name, pinned.version) == ("/tmp/models/fraud", "fraud", None)
    pinned = pin_model_uri("runs:/abc123/model", client=None)
    assert (pinned.name, pinned.version) == ("model", "abc123")


def test_malformed_registry_uri_is_refused():
    with pytest.raises(ModelError, match="models:/<name>@<alias>"):
        pin_model_uri("models:/a/b/c", client=None)
