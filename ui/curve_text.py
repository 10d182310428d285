"""What a what-if curve says, in plain lines under the chart."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd


def _is_all(value: Any) -> bool:
    """A curve's 'value' is an integer or "all"; a table round trip may turn 5 into "5"."""
    return isinstance(value, str) and not value.strip().lstrip("-").isdigit()


def value_phrase(factor: str, value: Any, x: float | None = None) -> str:
    """'30 warm users', 'all 36 warm users', '3 source interactions', 'all (≈2.5)'."""
    if factor == "warm_users":
        if _is_all(value):
            return (
                f"all {x:,.0f} warm users" if x is not None and np.isfinite(x) else "all warm users"
            )
        return f"{int(value):,} warm users"
    if _is_all(value):
        return (
            f"all source interactions (≈{x:,.1f} per cold user)"
            if x is not None and np.isfinite(x)
            else "all source interactions"
        )
    return f"{int(value):,} source interaction" + ("" if int(value) == 1 else "s")


def curve_verdict(curve: pd.DataFrame) -> list[str]:
    """One plain line per (segment, strategy) of a what-if curve: where the gain over the
    best target-only baseline is measurable (its 95% interval excludes zero) and at which
    value the interval first includes zero. Markdown, segment in bold."""
    from ui.charts import segment_label, segment_order

    out: list[str] = []
    if curve.empty:
        return out
    factor = str(curve["factor"].iloc[0])

    def order(v: Any) -> float:
        return float("inf") if _is_all(v) else float(v)

    for seg in segment_order(curve["segment"]):
        gs = curve[curve["segment"] == seg]
        for name in dict.fromkeys(gs["strategy"]):
            g = gs[(gs["strategy"] == name) & gs["delta"].notna()]
            if g.empty:
                continue
            g = g.assign(_o=g["value"].map(order)).sort_values("_o")
            pts = list(g.itertuples(index=False))

            def at(p) -> str:
                return value_phrase(factor, p.value, getattr(p, "x", None))

            def est(p) -> str:
                return f"{p.delta:+.4f} [{p.ci_low:+.4f}, {p.ci_high:+.4f}]"

            gain = [p.ci_low > 0 for p in pts]
            loss = [p.ci_high < 0 for p in pts]
            head = f"**{segment_label(seg)}** · {name}: "
            if all(gain):
                line = (
                    f"gains at every value, {est(pts[0])} at {at(pts[0])} and "
                    f"{est(pts[-1])} at {at(pts[-1])}; the interval never includes zero."
                    if len(pts) > 1
                    else f"gains {est(pts[0])} at {at(pts[0])}."
                )
            elif not any(gain) and not any(loss):
                line = "no measurable gain at any value (every 95% interval includes zero)."
            elif gain[0]:
                first = next(i for i, g_ in enumerate(gain) if not g_)
                line = (
                    f"gains {est(pts[0])} at {at(pts[0])}; the interval first includes zero "
                    f"at {at(pts[first])} ({est(pts[first])})."
                )
            else:
                incl = [not (a or b) for a, b in zip(gain, loss)]
                first_incl = next((i for i, v in enumerate(incl) if v), None)
                first_gain = next((i for i, v in enumerate(gain) if v), None)
                parts = []
                if first_incl is not None:
                    parts.append(
                        f"the interval first includes zero at {at(pts[first_incl])} "
                        f"({est(pts[first_incl])})"
                    )
                if first_gain is not None:
                    parts.append(
                        f"a gain is measurable first at {at(pts[first_gain])} "
                        f"({est(pts[first_gain])})"
                    )
                line = "; ".join(parts) + "." if parts else "no gain at any value."
            if any(loss):
                worse = ", ".join(at(p) for p, lo in zip(pts, loss) if lo)
                line += f" Worse than the baseline at {worse}."
            out.append(head + line)
    return out
