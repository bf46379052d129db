"""What a pyfunc model's output means: one JSON-ready prediction per row.

Used on the driver (the start-up probe, vetting a new version) and on executors (scoring).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from streamer.errors import ModelError
from streamer.scoring.records import to_json_value


def normalize_predictions(raw: Any, n_rows: int) -> tuple[list[Any], tuple[str, ...] | None]:
    """Pyfunc output → one JSON-ready prediction per row, and the column names if several.

    One column (Series, 1-D array, single-column frame or 2-D array) gives a value per row;
    several give an object per row keyed by column name (array columns are ``"0"``, ``"1"``...).
    """
    columns: tuple[str, ...] | None = None
    plain = False
    if isinstance(raw, dict):
        raw = pd.DataFrame(raw)
    if isinstance(raw, pd.DataFrame):
        if raw.shape[1] == 1:
            values = raw.iloc[:, 0].tolist()
        else:
            columns = tuple(str(c) for c in raw.columns)
            values = [dict(zip(columns, row)) for row in raw.itertuples(index=False, name=None)]
    elif isinstance(raw, pd.Series):
        values = raw.tolist()
    else:
        array = np.asarray(raw)
        plain = array.dtype.kind in "biu" or (
            array.dtype.kind == "f" and bool(np.isfinite(array).all())
        )
        if array.ndim == 2 and array.shape[1] == 1:
            array = array[:, 0]
        if array.ndim == 2:
            columns = tuple(str(i) for i in range(array.shape[1]))
            values = [dict(zip(columns, row)) for row in array.tolist()]
        else:
            values = array.tolist()
    if len(values) != n_rows:
        raise ModelError(f"the model returned {len(values)} predictions for {n_rows} rows")
    if plain:  # finite numbers from an array's tolist(): already JSON values
        return values, columns
    return [to_json_value(v) for v in values], columns


def scores_for_threshold(predictions: list[Any], score_column: str | None) -> np.ndarray:
    """The numeric value the threshold is compared with, NaN where there is none."""
    if score_column is not None:
        cells = [p.get(score_column) if isinstance(p, dict) else None for p in predictions]
    else:
        cells = [None if isinstance(p, dict) else p for p in predictions]
    return pd.to_numeric(pd.Series(cells, dtype=object), errors="coerce").to_numpy(float)


def predict_isolating(model: Any, frame: pd.DataFrame) -> tuple[dict[int, Any], dict[int, str]]:
    """Predictions by row position; rows the model fails on are isolated by bisection.

    A batch that scores cleanly costs one ``predict``. When it raises, halves are retried
    until the failing rows stand alone, so one poisoned record cannot take its batch down.
    """
    predictions: dict[int, Any] = {}
    failures: dict[int, str] = {}
    pending = [np.arange(len(frame))]
    while pending:
        idx = pending.pop()
        try:
            part = frame.iloc[idx].reset_index(drop=True)
            values, _ = normalize_predictions(model.predict(part), len(idx))
        except Exception as exc:
            if len(idx) == 1:
                failures[int(idx[0])] = f"{type(exc).__name__}: {exc}"[:2000]
            else:
                half = len(idx) // 2
                pending.extend([idx[half:], idx[:half]])
            continue
        predictions.update(zip(idx.tolist(), values))
    return predictions, failures
