"""The comparison as JSON, as a plain-text table, and as a PNG histogram of score differences."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any

from streamer.extras import require
from streamer.tools.compare.stats import CompareError, Comparison


def to_dict(comparison: Comparison) -> dict[str, Any]:
    """The comparison as plain JSON values (``--json``)."""
    c = comparison
    agreement = None
    if c.agreement is not None:
        agreement = {
            "compared": c.agreement.compared,
            "agree": c.agreement.agree,
            "rate": c.agreement.rate,
            "on_label": c.agreement.on_label,
            "disagreements": [
                {"live": a, "shadow": b, "count": n} for a, b, n in c.agreement.disagreements
            ],
        }
    scores = None
    if c.scores is not None:
        s = c.scores
        scores = {
            "pairs": s.pairs,
            "columns": list(s.columns),
            "correlation": s.correlation,
            "mean_abs_diff": s.mean_abs_diff,
            "max_abs_diff": s.max_abs_diff,
            "mean_diff": s.mean_diff,
            "live_mean": s.live_mean,
            "shadow_mean": s.shadow_mean,
        }
    return {
        "topics": {"live": c.live_topic, "shadow": c.shadow_topic},
        "counts": {
            "live": c.counts.live,
            "shadow": c.counts.shadow,
            "matched": c.counts.matched,
            "live_only": c.counts.live_only,
            "shadow_only": c.counts.shadow_only,
            "live_duplicates": c.counts.live_duplicates,
            "shadow_duplicates": c.counts.shadow_duplicates,
            "live_unparseable": c.counts.live_unparseable,
            "shadow_unparseable": c.counts.shadow_unparseable,
        },
        "models": {"live": c.live_models, "shadow": c.shadow_models},
        "kind": c.kind,
        "kind_given": c.kind_given,
        "score_column": c.score_column,
        "agreement": agreement,
        "scores": scores,
    }


def _num(value: float | None) -> str:
    return "-" if value is None else f"{value:.6g}"


def _json_text(value: Any) -> str:
    return json.dumps(value, sort_keys=True)


def format_table(comparison: Comparison) -> str:
    """The comparison as an aligned plain-text table."""
    c = comparison
    n = c.counts
    side_rows: list[tuple[str, str, str]] = [
        ("", "live", "shadow"),
        ("topic", c.live_topic, c.shadow_topic),
        ("records", str(n.live), str(n.shadow)),
        ("unparseable", str(n.live_unparseable), str(n.shadow_unparseable)),
        ("duplicates", str(n.live_duplicates), str(n.shadow_duplicates)),
        ("unmatched", str(n.live_only), str(n.shadow_only)),
    ]
    live_models = [f"{m} ({k})" for m, k in c.live_models.items()] or ["-"]
    shadow_models = [f"{m} ({k})" for m, k in c.shadow_models.items()] or ["-"]
    for i in range(max(len(live_models), len(shadow_models))):
        side_rows.append(
            (
                "models" if i == 0 else "",
                live_models[i] if i < len(live_models) else "",
                shadow_models[i] if i < len(shadow_models) else "",
            )
        )

    rows: list[tuple[str, str]] = [
        ("matched", str(n.matched)),
        ("kind", f"{c.kind} ({'--kind' if c.kind_given else 'auto'})"),
    ]
    a = c.agreement
    if a is not None:
        if a.rate is None:
            rows.append(("agreement", "- (no matched pairs)"))
        else:
            basis = (
                "on label"
                if a.on_label == a.compared
                else "on prediction"
                if a.on_label == 0
                else f"on label for {a.on_label}, else on prediction"
            )
            rows.append(("agreement", f"{a.rate:.2%} ({a.agree} of {a.compared} agree; {basis})"))
            for i, (x, y, k) in enumerate(a.disagreements[:5]):
                text = f"live {_json_text(x)} -> shadow {_json_text(y)}: {k}"
                rows.append(("disagreements" if i == 0 else "", text))
    s = c.scores
    if s is None:
        rows.append(("scores", "- (no pair with a numeric score on both sides)"))
    else:
        where = (
            "numeric predictions"
            if not s.columns
            else f"column {', '.join(json.dumps(x) for x in s.columns)}"
            + ("" if c.score_column else " (last numeric)")
        )
        rows += [
            ("score pairs", f"{s.pairs} ({where})"),
            ("correlation", _num(s.correlation)),
            ("mean abs diff", _num(s.mean_abs_diff)),
            ("max abs diff", _num(s.max_abs_diff)),
            ("mean diff", f"{_num(s.mean_diff)} (shadow - live)"),
            ("mean score", f"live {_num(s.live_mean)}, shadow {_num(s.shadow_mean)}"),
        ]

    width = max(len(label) for label, *_ in [*side_rows, *rows]) + 2
    live_width = max(len(live) for _, live, _ in side_rows) + 2
    lines = [f"{label:<{width}}{live:<{live_width}}{shadow}" for label, live, shadow in side_rows]
    lines.append("")
    lines += [f"{label:<{width}}{value}" for label, value in rows]
    return "\n".join(line.rstrip() for line in lines)


def _side_title(models: Mapping[str, int]) -> str:
    return " + ".join(models) if models else "?"


def plot_differences(comparison: Comparison, path: str) -> None:
    """A PNG histogram of shadow − live scores (matplotlib's Agg canvas, no pyplot state)."""
    diffs = comparison.differences
    if not diffs:
        raise CompareError(
            "--plot: no matched pair has a numeric score on both sides, nothing to plot "
            "(for object predictions, see --score-column)"
        )
    require("plot", "compare --plot")
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(8, 4.5), layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.subplots()
    axes.hist(diffs, bins=max(10, min(60, round(math.sqrt(len(diffs))))), color="#4c72b0")
    axes.axvline(0.0, color="black", linewidth=0.8)
    axes.set_xlabel("shadow score - live score")
    axes.set_ylabel("events")
    axes.set_title(
        f"score difference: shadow {_side_title(comparison.shadow_models)} - live "
        f"{_side_title(comparison.live_models)}"
    )
    s = comparison.scores
    if s is not None:
        axes.text(
            0.99,
            0.97,
            f"n={s.pairs}  mean abs diff={_num(s.mean_abs_diff)}  r={_num(s.correlation)}",
            transform=axes.transAxes,
            ha="right",
            va="top",
            fontsize=9,
        )
    try:
        figure.savefig(path, format="png", dpi=100)
    except OSError as exc:
        raise CompareError(f"--plot: cannot write {path}: {exc}") from exc
