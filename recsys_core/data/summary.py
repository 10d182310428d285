"""A short, JSON-able description of a loaded domain, for the CLI and the data page."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from recsys_core.data.schema import ITEM, RATING, TIME, USER, Domain
from recsys_core.errors import CLEANING_CODES

_QUANTILES = (
    ("min", 0.0),
    ("p25", 0.25),
    ("median", 0.5),
    ("p75", 0.75),
    ("p90", 0.9),
    ("max", 1.0),
)


def summarize(domain: Domain) -> dict[str, Any]:
    """Counts and distributions of one domain.

    Returns:
        A JSON-able dict:

        * ``name``, ``source_files`` (list of str);
        * ``rows``, ``users``, ``items`` (int): interactions and distinct ids in them;
        * ``density`` (float): rows / (users * items), 0.0 for an empty domain;
        * ``rating``: ``{"min", "max", "mean"}`` (floats) or None without ratings;
        * ``time_span``: ``{"first", "last"}`` ISO dates (UTC) or None without times;
        * ``per_user`` / ``per_item``: interactions per user / item as
          ``{"min", "p25", "median", "p75", "p90", "max", "mean"}`` (floats);
        * ``item_table_rows`` / ``user_table_rows`` (int or None), ``text_fields`` (list);
        * ``warnings``: each warning as a string;
        * ``cleaning``: what the built-in demo loader cleaned by its documented rules
          (:data:`~recsys_core.errors.CLEANING_CODES`), as strings: notes, not problems.
    """
    df = domain.interactions
    # One count per id (no separate nunique): each pass hashes millions of strings.
    per_user = df[USER].value_counts(sort=False).to_numpy(dtype=np.float64)
    per_item = df[ITEM].value_counts(sort=False).to_numpy(dtype=np.float64)
    n_users, n_items = len(per_user), len(per_item)
    rows = len(df)
    ratings = df[RATING].to_numpy(dtype=np.float64) if RATING in df.columns else np.zeros(0)
    ratings = ratings[np.isfinite(ratings)]
    rating = (
        {
            "min": float(ratings.min()),
            "max": float(ratings.max()),
            "mean": round(float(ratings.mean()), 4),
        }
        if len(ratings)
        else None
    )
    time_span = None
    if TIME in df.columns and rows:
        t = df[TIME].to_numpy(dtype=np.int64)
        time_span = {"first": _iso_date(int(t.min())), "last": _iso_date(int(t.max()))}
    return {
        "name": domain.name,
        "source_files": list(domain.source_files),
        "rows": rows,
        "users": n_users,
        "items": n_items,
        "density": rows / (n_users * n_items) if n_users and n_items else 0.0,
        "rating": rating,
        "time_span": time_span,
        "per_user": _distribution(per_user),
        "per_item": _distribution(per_item),
        "item_table_rows": None if domain.items is None else len(domain.items),
        "user_table_rows": None if domain.users is None else len(domain.users),
        "text_fields": list(domain.text_fields),
        "warnings": [str(w) for w in domain.warnings if w.code not in CLEANING_CODES],
        "cleaning": [str(w) for w in domain.warnings if w.code in CLEANING_CODES],
    }


def format_summary(summary: dict[str, Any]) -> str:
    """A few aligned lines for ``transfer-lab validate``.

    Args:
        summary: the output of :func:`summarize`.
    """
    s = summary
    files = f" ({', '.join(s['source_files'])})" if s.get("source_files") else ""
    out = [f"Domain '{s['name']}'{files}"]
    out.append(
        f"  interactions  {s['rows']:,}   users {s['users']:,}   items {s['items']:,}   "
        f"density {_pct(s['density'])}"
    )
    r = s.get("rating")
    out.append(
        f"  ratings       {_num(r['min'])} to {_num(r['max'])}, mean {r['mean']:.2f}"
        if r
        else "  ratings       none (implicit feedback)"
    )
    t = s.get("time_span")
    out.append(
        f"  time span     {t['first']} to {t['last']}" if t else "  time span     no timestamps"
    )
    for key, label in (("per_user", "per user"), ("per_item", "per item")):
        d = s[key]
        out.append(
            f"  {label:<12}  min {_num(d['min'])}, median {_num(d['median'])}, "
            f"p90 {_num(d['p90'])}, max {_num(d['max'])}, mean {d['mean']:.1f}"
        )
    if s.get("item_table_rows") is not None:
        tf = " | ".join(s["text_fields"]) or "none"
        out.append(f"  item table    {s['item_table_rows']:,} rows; text fields: {tf}")
    if s.get("user_table_rows") is not None:
        out.append(f"  user table    {s['user_table_rows']:,} rows")
    out.extend(f"  cleaned       {c}" for c in s.get("cleaning") or [])
    warnings = s.get("warnings") or []
    if warnings:
        out.append(f"  warnings ({len(warnings)}):")
        out.extend(f"    - {w}" for w in warnings)
    else:
        out.append("  warnings      none")
    return "\n".join(out)


def count_noun(n: int, singular: str, plural: str | None = None) -> str:
    """'1 item', '0 items', '1,234 items' (``plural`` defaults to singular + 's')."""
    return f"{n:,} {singular if n == 1 else (plural or singular + 's')}"


def _distribution(counts: np.ndarray) -> dict[str, float]:
    """Quantiles and mean of interactions per id (``counts``: one float per id)."""
    if len(counts) == 0:
        return {k: 0.0 for k, _ in _QUANTILES} | {"mean": 0.0}
    q = np.quantile(counts, [p for _, p in _QUANTILES])
    out = {k: float(v) for (k, _), v in zip(_QUANTILES, q)}
    out["mean"] = round(float(counts.mean()), 4)
    return out


def _iso_date(seconds: int) -> str:
    return pd.Timestamp(seconds, unit="s", tz="UTC").strftime("%Y-%m-%d")


def _num(x: float) -> str:
    return f"{int(x)}" if float(x).is_integer() else f"{x:.2f}"


def _pct(x: float) -> str:
    return f"{100 * x:.2f}%" if x >= 0.0001 else f"{100 * x:.4f}%"
