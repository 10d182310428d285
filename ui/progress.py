"""How the app words progress: durations and the time left, one way on every page.

The estimate is the pace so far (:func:`recsys_core.runs.jobs.eta_seconds`); a step
that may end early (training with early stopping) says "at most".
"""

from __future__ import annotations

from recsys_core.runs.jobs import eta_seconds


def duration(seconds: float) -> str:
    """12 -> "12 s", 150 -> "2.5 min", 4000 -> "1 h 7 min"."""
    s = max(float(seconds), 0.0)
    if s < 90:
        return f"{s:.0f} s"
    if s < 3600:
        m = s / 60
        return f"{m:.1f} min" if m < 10 else f"{m:.0f} min"
    return f"{int(s // 3600)} h {int(s % 3600 // 60)} min"


def time_left(seconds: float | None, fraction: float | None, at_most: bool = False) -> str | None:
    """ "about 3.0 min left" (or "at most ..."), from the pace so far; None too early."""
    eta = eta_seconds(float(seconds or 0.0), fraction)
    if eta is None or eta <= 0:
        return None
    return f"{'at most' if at_most else 'about'} {duration(eta)} left"
