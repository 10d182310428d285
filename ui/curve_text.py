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


def family_note(curve: pd.DataFrame) -> str:
    """The rule behind every claim of the verdict and the chart, in one sentence."""
    from recsys_core.compare import FAMILY_ALPHA
    from recsys_core.curves import family_size

    n = family_size(curve)
    return (
        f"A gain or loss is claimed (and its marker filled) only where its 95% interval "
        f"excludes zero and it holds after Holm's correction for the {n} comparison"
        f"{'' if n == 1 else 's'} on this chart (every strategy, segment and value; "
        f"{FAMILY_ALPHA:.0%} family-wise error rate): with that many intervals, some "
        "exclude zero by chance alone."
    )


def curve_verdict(curve: pd.DataFrame) -> list[str]:
    """One plain line per (segment, strategy) of a what-if curve: at which values the gain
    over the best target-only baseline is measurable and where it stops being so.

    Measurable means ``significant``: the 95% interval excludes zero and the point holds
    after Holm's correction over all the curve's points (:func:`family_note`). A point
    whose interval excludes zero without surviving the correction is named as such, never
    as a gain. Markdown, segment in bold."""
    from recsys_core.curves import family_size, with_family
    from ui.charts import segment_label, segment_order

    out: list[str] = []
    if curve.empty:
        return out
    curve = with_family(curve)
    factor = str(curve["factor"].iloc[0])
    n = family_size(curve)

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

            gain = [bool(p.significant) and p.delta > 0 for p in pts]
            loss = [bool(p.significant) and p.delta < 0 for p in pts]
            chance = [(p.ci_low > 0 or p.ci_high < 0) and not p.significant for p in pts]
            head = f"**{segment_label(seg)}** · {name}: "
            if all(gain):
                line = (
                    f"gains at every value, {est(pts[0])} at {at(pts[0])} and "
                    f"{est(pts[-1])} at {at(pts[-1])}."
                    if len(pts) > 1
                    else f"gains {est(pts[0])} at {at(pts[0])}."
                )
            elif not any(gain) and not any(loss):
                line = (
                    "no measurable gain at any value."
                    if any(chance)
                    else "no measurable gain at any value (every 95% interval includes zero)."
                )
            elif gain[0]:
                first = next(i for i, g_ in enumerate(gain) if not g_)
                line = (
                    f"gains {est(pts[0])} at {at(pts[0])}; the gain is no longer measurable "
                    f"at {at(pts[first])} ({est(pts[first])})."
                )
            else:
                none = [not (a or b) for a, b in zip(gain, loss)]
                first_none = next((i for i, v in enumerate(none) if v), None)
                first_gain = next((i for i, v in enumerate(gain) if v), None)
                parts = []
                if first_none is not None:
                    parts.append(
                        f"no measurable difference {'first ' if first_none else ''}at "
                        f"{at(pts[first_none])} ({est(pts[first_none])})"
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
            if any(chance):
                where = ", ".join(f"{at(p)} ({est(p)})" for p, c in zip(pts, chance) if c)
                line += (
                    f" The interval excludes zero at {where}, but not after Holm's "
                    f"correction for {n} comparisons."
                )
            out.append(head + line)
    return out
