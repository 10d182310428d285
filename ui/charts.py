"""Plotly figure builders for the pages and the HTML report: one look everywhere.

Each builder takes tables the engine produced (metrics records, comparison tables,
training curves, projections) and returns a ``plotly.graph_objects.Figure``; none
computes a metric. The same figures go into the standalone HTML report, so the app and
the report look alike (the pages draw them with ``theme=None``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from recsys_core.report import segment_title

FONT = "Inter, 'Source Sans Pro', 'Segoe UI', Helvetica, Arial, sans-serif"
PALETTE = (
    "#4C78A8",
    "#F58518",
    "#54A24B",
    "#E45756",
    "#72B7B2",
    "#B279A2",
    "#EECA3B",
    "#9D755D",
    "#FF9DA6",
    "#BAB0AC",
)
# Twelve hues told apart at a glance, for categories such as genres (the house palette
# without its grey, then three darker hues); grey is kept for "other".
CATEGORY_PALETTE = (*PALETTE[:9], "#332288", "#117733", "#882255")
SPECIAL_COLORS = {"other": "#BAB0AC", "users": "#262730", "(none)": "#DDDDDD"}
DOMAIN_COLORS = {"target": "#4C78A8", "source": "#F58518", "both": "#54A24B"}
COLD_COLORS = {"warm item": "#4C78A8", "cold item": "#E45756", "source only": "#BAB0AC"}
POP_ORDER = ("top 10%", "10-50%", "bottom 50%", "never in training")
POP_COLORS = dict(zip(POP_ORDER, ("#B2182B", "#F4A582", "#92C5DE", "#BAB0AC")))


def _ci_error_bars(g) -> dict:
    """Plotly error bars from a frame's value / ci_low / ci_high columns (95% interval)."""
    return dict(
        type="data",
        symmetric=False,
        array=(g["ci_high"] - g["value"]).clip(lower=0),
        arrayminus=(g["value"] - g["ci_low"]).clip(lower=0),
        thickness=1.2,
        width=3,
        color="#555",
    )


def plot_text(value: object) -> str:
    """A user's string (run label, item title, genre) as plotly shows it literally.

    Plotly renders a subset of HTML in every text it draws (legend names, tick labels,
    titles, hover text): ``<b>``, ``<br>`` and ``<a href="...">``, which becomes a live
    link in the chart's SVG (issue 12: a run label did, on the Compare page and in the
    HTML report). Plotly decodes ``&amp;``, ``&lt;`` and ``&gt;``, so escaping those three
    shows the characters and makes no tag.
    """
    return str(value).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _plot_names(names: Mapping[str, str]) -> dict[str, str]:
    return {k: plot_text(v) for k, v in names.items()}


def segment_label(seg: str) -> str:
    """'cold_users_k3' -> 'Cold users, k = 3' (the engine's one naming of segments)."""
    return segment_title(seg)


def style(
    fig: go.Figure, title: str | None = None, height: int = 380, legend_below: bool = False
) -> go.Figure:
    """The house look: white background, light grid, one font, legend on top (or below
    the plot for figures with subplot titles, where a top legend would cover them)."""
    fig.update_layout(
        template="plotly_white",
        font=dict(family=FONT, size=13, color="#262730"),
        colorway=list(PALETTE),
        height=height,
        margin=dict(l=10, r=10, t=(95 if _has_legend(fig) else 55) if title else 40, b=10),
        legend=dict(orientation="h", yanchor="bottom", y=1.02, xanchor="left", x=0, title_text=""),
        hoverlabel=dict(font_family=FONT),
    )
    if title:
        fig.update_layout(
            title=dict(
                text=title,
                x=0,
                xanchor="left",
                y=0.98,
                yanchor="top",
                yref="container",
                font=dict(size=16),
            )
        )
    if legend_below:
        fig.update_layout(
            legend=dict(orientation="h", yanchor="top", y=-0.22, xanchor="left", x=0),
            margin=dict(t=60 if title else 40, b=70),
        )
    fig.update_xaxes(showline=True, linecolor="#d0d3da", gridcolor="#eef0f4", zeroline=False)
    fig.update_yaxes(showline=False, gridcolor="#eef0f4", zeroline=False)
    return fig


def _has_legend(fig: go.Figure) -> bool:
    """Whether the figure draws a legend (then the title needs room above it)."""
    shown = [t for t in fig.data if t.showlegend is not False]
    return len(shown) > 1 or fig.layout.showlegend is True


def run_colors(names: Sequence[str]) -> dict[str, str]:
    """A stable colour per run name, in the order given."""
    return {n: PALETTE[i % len(PALETTE)] for i, n in enumerate(dict.fromkeys(names))}


# --------------------------------------------------------------------------- data page


def count_distribution(counts: np.ndarray, what: str, color: str = PALETTE[0]) -> go.Figure:
    """Histogram of interactions per user (or item) on log-spaced bins, both axes log."""
    counts = np.asarray(counts, dtype=np.float64)
    counts = counts[counts > 0]
    fig = go.Figure()
    if len(counts):
        hi = max(counts.max(), 2.0)
        edges = np.unique(np.round(np.logspace(0, np.log10(hi + 1), 25)))
        hist, edges = np.histogram(counts, bins=edges)
        centers = np.sqrt(edges[:-1] * edges[1:])
        keep = hist > 0
        fig.add_bar(
            x=centers[keep],
            y=hist[keep],
            width=(edges[1:] - edges[:-1])[keep] * 0.9,
            marker_color=color,
            customdata=np.stack([edges[:-1][keep], edges[1:][keep] - 1], axis=1),
            hovertemplate="%{customdata[0]:.0f}-%{customdata[1]:.0f} interactions: %{y:,} "
            + what
            + "<extra></extra>",
        )
        fig.update_xaxes(tickvals=_log_ticks(edges[0], edges[-1]))
        fig.update_yaxes(tickvals=_log_ticks(1, hist.max()))
    fig.update_xaxes(type="log", title_text="interactions (log scale)", minor=dict(showgrid=False))
    fig.update_yaxes(type="log", title_text=f"{what} (log scale)")
    return style(fig, f"Interactions per {what.rstrip('s')}", height=300)


def rating_histogram(ratings: np.ndarray, color: str = PALETTE[0]) -> go.Figure:
    r = np.asarray(ratings, dtype=np.float64)
    r = r[np.isfinite(r)]
    values, counts = np.unique(r, return_counts=True)
    fig = go.Figure()
    if len(values) <= 20:
        fig.add_bar(
            x=values,
            y=counts,
            marker_color=color,
            hovertemplate="rating %{x}: %{y:,}<extra></extra>",
        )
    else:
        fig.add_histogram(x=r, nbinsx=30, marker_color=color)
    fig.update_xaxes(title_text="rating")
    fig.update_yaxes(title_text="interactions")
    return style(fig, "Ratings", height=300)


def segment_sizes(sizes: pd.DataFrame) -> go.Figure:
    """Bars of users per segment from ``Split.segment_sizes()``, test interactions on hover."""
    df = sizes.copy()
    df["label"] = df["segment"].map(segment_label).str.replace(", ", "<br>", regex=False)
    fig = go.Figure(
        go.Bar(
            x=df["label"],
            y=df["users"],
            marker_color=[
                PALETTE[3] if s.startswith("cold") else PALETTE[0] for s in df["segment"]
            ],
            customdata=df["test_interactions"],
            text=df["users"],
            textposition="outside",
            cliponaxis=False,
            hovertemplate="%{x}: %{y:,} users, %{customdata:,} test interactions<extra></extra>",
        )
    )
    fig.update_yaxes(
        title_text="users in test", range=[0, float(df["users"].max()) * 1.18 if len(df) else 1]
    )
    return style(fig, "Test users per segment", height=320)


# --------------------------------------------------------------------------- compare page


def metric_by_segment(table: pd.DataFrame, names: Mapping[str, str]) -> go.Figure:
    """Grouped bars: one group per segment, one bar per run, 95% interval as error bars.

    ``table`` is :func:`recsys_core.compare.compare_runs` output.
    """
    names = _plot_names(names)
    fig = go.Figure()
    colors = run_colors([names[r] for r in dict.fromkeys(table["run_id"])])
    metric = f"{table['metric'].iloc[0].upper()}@{table['k'].iloc[0]}" if len(table) else ""
    for rid, g in table.groupby("run_id", sort=False):
        name = names[rid]
        fig.add_bar(
            name=name,
            x=[segment_label(s) for s in g["segment"]],
            y=g["value"],
            marker_color=colors[name],
            error_y=_ci_error_bars(g),
            customdata=np.stack([g["ci_low"], g["ci_high"]], axis=1),
            hovertemplate=f"{name}<br>%{{x}}: %{{y:.4f}} [%{{customdata[0]:.4f}}, %{{customdata[1]:.4f}}]<extra></extra>",
        )
    fig.update_layout(barmode="group", bargap=0.25)
    fig.update_yaxes(title_text=metric)
    return style(fig, f"{metric} by segment (95% intervals)", height=420)


def few_shot_curve(
    metrics: pd.DataFrame, names: Mapping[str, str], metric: str, k: int
) -> go.Figure:
    """Cold-user metric against the number of revealed interactions k, one line per run.

    ``metrics``: stacked metric records with a run_id column (segment, metric, k, value,
    ci_low, ci_high).
    """
    names = _plot_names(names)
    m = metrics[
        (metrics["metric"] == metric)
        & (metrics["k"] == k)
        & metrics["segment"].str.startswith("cold_users_k")
    ]
    fig = go.Figure()
    colors = run_colors([names[r] for r in dict.fromkeys(metrics["run_id"])])
    for rid, g in m.groupby("run_id", sort=False):
        g = g.assign(shots=g["segment"].str.removeprefix("cold_users_k").astype(int)).sort_values(
            "shots"
        )
        name, c = names[rid], colors[names[rid]]
        fig.add_scatter(
            x=np.concatenate([g["shots"], g["shots"][::-1]]),
            y=np.concatenate([g["ci_high"], g["ci_low"][::-1]]),
            mode="lines",
            fill="toself",
            fillcolor=_alpha(c, 0.12),
            line=dict(width=0),
            hoverinfo="skip",
            showlegend=False,
            legendgroup=name,
        )
        fig.add_scatter(
            x=g["shots"],
            y=g["value"],
            name=name,
            mode="lines+markers",
            line=dict(color=c, width=2.5),
            marker=dict(size=8),
            legendgroup=name,
            hovertemplate=f"{name}<br>k=%{{x}}: %{{y:.4f}}<extra></extra>",
        )
    fig.update_xaxes(title_text="interactions revealed by a cold user (k)", dtick=1)
    fig.update_yaxes(title_text=f"{metric.upper()}@{k}")
    return style(fig, f"Few-shot curve: cold users, {metric.upper()}@{k}", height=400)


def cold_items(metrics: pd.DataFrame, names: Mapping[str, str], k: int) -> go.Figure:
    """Bars of recall, NDCG and hit rate at k on the cold-item segment, per run."""
    names = _plot_names(names)
    m = metrics[
        (metrics["segment"] == "cold_items")
        & (metrics["k"] == k)
        & metrics["metric"].isin(["recall", "ndcg", "hit"])
    ]
    fig = go.Figure()
    colors = run_colors([names[r] for r in dict.fromkeys(metrics["run_id"])])
    for rid, g in m.groupby("run_id", sort=False):
        name = names[rid]
        fig.add_bar(
            name=name,
            x=[f"{x.upper()}@{k}" for x in g["metric"]],
            y=g["value"],
            marker_color=colors[name],
            error_y=_ci_error_bars(g),
            hovertemplate=f"{name}<br>%{{x}}: %{{y:.4f}}<extra></extra>",
        )
    fig.update_layout(barmode="group")
    return style(fig, "Cold items: test interactions with items never seen in training", height=380)


def exposure_curves(runs: list[dict], names: Mapping[str, str]) -> go.Figure | None:
    """Cold-item against warm-item Recall@20 on validation as new items get more
    exposure (``info["exposure"]`` of each run); the operating point each run keeps is
    marked. None when no run has a curve."""
    names = _plot_names(names)
    fig = go.Figure()
    have = [r for r in runs if (r.get("extra") or {}).get("info", {}).get("exposure")]
    if not have:
        return None
    colors = run_colors([names[r["run_id"]] for r in runs])
    for r in have:
        ex = r["extra"]["info"]["exposure"]
        c = pd.DataFrame(ex["curve"])
        name = names[r["run_id"]]
        fig.add_scatter(
            x=c["warm_recall@20"], y=c["cold_recall@20"], mode="lines+markers", name=name,
            line=dict(color=colors[name], width=2), marker=dict(size=5),
            customdata=c["offset"],
            hovertemplate=f"{name}<br>offset %{{customdata:+.2f}} sd<br>warm %{{x:.4f}}"
            "<br>new %{y:.4f}<extra></extra>",
        )  # fmt: skip
        pick = c[c["offset"] == ex["chosen_offset"]]
        fig.add_scatter(
            x=pick["warm_recall@20"], y=pick["cold_recall@20"], mode="markers",
            marker=dict(size=14, symbol="star", color=colors[name], line=dict(width=1, color="#222")),
            name=f"{name}: chosen on validation", showlegend=False,
            hovertemplate=f"{name}: kept (offset {ex['chosen_offset']:+.2f} sd)<extra></extra>",
        )  # fmt: skip
    fig.update_xaxes(title_text="warm-item Recall@20 (validation)")
    fig.update_yaxes(title_text="new-item Recall@20 (validation)")
    return style(fig, "New-item exposure: each point adds an offset to new items' scores", 420)


def training_curves(curves: pd.DataFrame, names: Mapping[str, str]) -> go.Figure:
    """Validation NDCG@10 (left) and training loss (right) per epoch; dashed = source stage.

    ``curves``: stacked ``curve`` tables with a run_id column (epoch, loss, val_ndcg@10,
    stage).
    """
    names = _plot_names(names)
    fig = make_subplots(
        rows=1,
        cols=2,
        subplot_titles=("Validation NDCG@10", "Training loss"),
        horizontal_spacing=0.08,
    )
    colors = run_colors([names[r] for r in dict.fromkeys(curves["run_id"])])
    for (rid, stage), g in curves.groupby(["run_id", "stage"], sort=False):
        name = names[rid]
        dash = "dash" if str(stage) in ("source", "teacher") else "solid"
        label = f"{name} ({stage})"
        for col, ycol in ((1, "val_ndcg@10"), (2, "loss")):
            if ycol not in g or g[ycol].isna().all():
                continue
            fig.add_scatter(
                x=g["epoch"],
                y=g[ycol],
                name=label,
                legendgroup=label,
                showlegend=col == 1,
                mode="lines+markers",
                line=dict(color=colors[name], dash=dash, width=2),
                marker=dict(size=5),
                row=1,
                col=col,
                hovertemplate=f"{label}<br>epoch %{{x}}: %{{y:.4f}}<extra></extra>",
            )
    fig.update_xaxes(title_text="epoch")
    return style(fig, None, height=420, legend_below=True)


TIME_STEPS = (
    ("encode_text", "encode text", PALETTE[4]),
    ("pretrain_source", "pretrain source", PALETTE[5]),
    ("fit", "fit", PALETTE[0]),
    ("evaluate", "evaluate", PALETTE[1]),
)
"""The steps a run's seconds are split into (column, legend, colour), in time order."""


def time_and_size(runs: pd.DataFrame) -> go.Figure:
    """Bars of each run's seconds, step by step, and parameters per run.

    ``runs``: columns name, fit, evaluate, n_parameters, and optionally encode_text and
    pretrain_source (shared steps, charged to the run that paid for them; a step no run
    paid for is left out of the legend).
    """
    runs = runs.assign(name=runs["name"].map(plot_text))
    fig = make_subplots(
        rows=1,
        cols=2,
        subplot_titles=("Wall-clock seconds", "Parameters of the scoring model"),
        horizontal_spacing=0.1,
    )
    for col, label, color in TIME_STEPS:
        if col not in runs or not (runs[col].fillna(0) > 0).any():
            continue
        fig.add_bar(
            x=runs["name"],
            y=runs[col],
            name=label,
            marker_color=color,
            row=1,
            col=1,
            hovertemplate=f"%{{x}}: {label} %{{y:.1f}} s<extra></extra>",
        )
    fig.add_bar(
        x=runs["name"],
        y=runs["n_parameters"],
        name="parameters",
        marker_color=PALETTE[2],
        showlegend=False,
        row=1,
        col=2,
        hovertemplate="%{x}: %{y:,} parameters<extra></extra>",
    )
    fig.update_layout(barmode="stack")
    fig.update_yaxes(title_text="seconds", row=1, col=1)
    fig.update_yaxes(title_text="parameters", row=1, col=2)
    return style(fig, None, height=400, legend_below=True)


def live_curve(history: pd.DataFrame) -> go.Figure:
    """Small validation curve of a running run, from its heartbeats."""
    h = history.dropna(subset=["val_metric"]) if "val_metric" in history else history.iloc[0:0]
    fig = go.Figure()
    for stage, g in h.groupby("stage", sort=False):
        fig.add_scatter(x=g["epoch"], y=g["val_metric"], mode="lines+markers", name=str(stage))
    fig.update_xaxes(title_text="epoch")
    fig.update_yaxes(title_text="val NDCG@10")
    fig = style(fig, None, height=220)
    fig.update_layout(margin=dict(l=10, r=10, t=25, b=10))
    return fig


# --------------------------------------------------------------------------- embeddings


def embedding_map(points: pd.DataFrame, color: str, method: str) -> go.Figure:
    """Scatter of projected vectors, one panel per stage, coloured by ``color``.

    ``points``: columns x, y, stage, title and the colour column (categorical).
    """
    # titles, genres and stage labels come from the user's files and runs
    points = points.assign(
        title=points["title"].map(plot_text),
        stage=points["stage"].map(plot_text),
        **{color: points[color].astype(str).map(plot_text)},
    )
    stages = list(dict.fromkeys(points["stage"]))
    n = len(stages)
    fig = make_subplots(
        rows=1,
        cols=n,
        subplot_titles=stages,
        shared_xaxes=True,
        shared_yaxes=True,
        horizontal_spacing=0.03,
    )
    cats = list(dict.fromkeys(points[color].astype(str)))
    palette = {
        "domain": DOMAIN_COLORS,
        "cold status": COLD_COLORS,
        "popularity": POP_COLORS,
    }.get(color, {})
    if color == "popularity":
        cats = [c for c in POP_ORDER if c in cats]
    if not palette:  # open-ended categories (genres): the most frequent keep a hue each
        from recsys_core.embeddings.projection import group_rare

        fixed = tuple(k for k in SPECIAL_COLORS if k != "other")
        grouped, cats = group_rare(points[color], len(CATEGORY_PALETTE), fixed=fixed)
        points = points.assign(**{color: grouped})
        named = [c for c in cats if c not in SPECIAL_COLORS]
        palette = {**dict(zip(named, CATEGORY_PALETTE)), **SPECIAL_COLORS}
    colors = {c: palette.get(c, PALETTE[i % len(PALETTE)]) for i, c in enumerate(cats)}
    for j, stage in enumerate(stages, start=1):
        ps = points[points["stage"] == stage]
        for c in cats:
            g = ps[ps[color].astype(str) == c]
            if g.empty:
                continue
            fig.add_scattergl(
                x=g["x"],
                y=g["y"],
                mode="markers",
                name=c,
                legendgroup=c,
                showlegend=j == 1,
                marker=dict(size=5, color=colors[c], opacity=0.75, line=dict(width=0)),
                text=g["title"],
                hovertemplate="%{text}<br>" + f"{color}: {c}<extra>{stage}</extra>",
                row=1,
                col=j,
            )
    fig.update_xaxes(showticklabels=False, showgrid=False, showline=False)
    fig.update_yaxes(showticklabels=False, showgrid=False)
    fig = style(fig, None, height=560 if n <= 2 else 500)
    fig.update_layout(
        legend=dict(
            itemsizing="constant", orientation="h", yanchor="top", y=-0.02, xanchor="center", x=0.5
        ),
        margin=dict(t=40, b=40),
    )
    return fig


def drift_histogram(drift: np.ndarray, a: str, b: str) -> go.Figure:
    fig = go.Figure(go.Histogram(x=drift, nbinsx=40, marker_color=PALETTE[0]))
    fig.update_xaxes(
        title_text="cosine distance after Procrustes alignment",
        range=[0, max(1.0, float(np.max(drift)) if len(drift) else 1.0)],
    )
    fig.update_yaxes(title_text="items")
    return style(fig, f"Per-item drift: {plot_text(a)} → {plot_text(b)}", height=300)


# --------------------------------------------------------------------------- what-if page


def segment_order(segments: Sequence[str]) -> list[str]:
    """all, warm users, cold users by k, then cold items (as the compare page lists them)."""

    def key(s: str) -> tuple[int, int, str]:
        if s.startswith("cold_users_k") and s.removeprefix("cold_users_k").isdigit():
            return (2, int(s.removeprefix("cold_users_k")), s)
        rank = {"all": 0, "warm_users": 1, "cold_items": 3}.get(s, 4)
        return (rank, 0, s)

    return sorted(dict.fromkeys(segments), key=key)


def curve_positions(points: pd.DataFrame) -> tuple[dict, list[float], list[str]]:
    """Where each value of a what-if curve sits on a log x axis, and its tick labels.

    Numbers sit at themselves; 0 (no source interaction) sits a little left of the
    smallest positive value, since a log axis has no zero; "all" sits at the effective
    number the engine measured (mean ``x`` over the rows of that value) when it is
    beyond the largest value asked for, else one step to the right of it.

    Returns:
        value -> x position, the tick positions and their labels (in value order).
    """
    labels = list(dict.fromkeys(points["value"]))
    nums = sorted(float(v) for v in labels if not isinstance(v, str))
    positive = [v for v in nums if v > 0]
    lo = positive[0] if positive else 1.0
    hi = positive[-1] if positive else 1.0
    pos: dict = {}
    for v in labels:
        if isinstance(v, str):  # "all"
            xs = pd.to_numeric(points.loc[points["value"] == v, "x"], errors="coerce")
            eff = float(xs.mean()) if xs.notna().any() else float("nan")
            pos[v] = eff if np.isfinite(eff) and eff > hi * 1.15 else hi * 2.0
        elif float(v) <= 0:
            pos[v] = lo / 3.0
        else:
            pos[v] = float(v)
    order = sorted(labels, key=lambda v: pos[v])
    ticks = [pos[v] for v in order]
    text = []
    for v in order:
        if isinstance(v, str):
            xs = pd.to_numeric(points.loc[points["value"] == v, "x"], errors="coerce")
            eff = float(xs.mean()) if xs.notna().any() else float("nan")
            text.append(f"all<br>(≈{eff:,.0f})" if np.isfinite(eff) else "all")
        else:
            text.append(f"{int(v):,}")
    return pos, ticks, text


FACTOR_AXIS = {
    "warm_users": "warm target users kept in training",
    "source_interactions": "source interactions per cold user",
}


def what_if_curve(curve: pd.DataFrame, columns: int = 3) -> go.Figure:
    """Gain over the best target-only baseline against the factor's value: one panel
    per segment, one line per strategy with its 95% paired interval as a band, and the
    baseline as the dashed zero line (its name in the hover of each point).

    ``curve``: :func:`recsys_core.curves.what_if_curve` output (factor, value, strategy,
    segment, metric, k, delta, ci_low, ci_high, baseline, x, n_users, ...).
    """
    from recsys_core.curves import with_family

    curve = with_family(curve)
    segs = segment_order(curve["segment"])
    n = max(len(segs), 1)
    cols = min(columns, n)
    rows = -(-n // cols)
    fig = make_subplots(
        rows=rows,
        cols=cols,
        subplot_titles=[segment_label(s) for s in segs],
        horizontal_spacing=0.06,
        vertical_spacing=0.16 if rows > 1 else 0.1,
        shared_xaxes=False,
    )
    if curve.empty:
        return style(fig, None, height=300)
    pos, ticks, ticktext = curve_positions(curve)
    strategies = list(dict.fromkeys(curve["strategy"]))
    colors = run_colors(strategies)
    factor = str(curve["factor"].iloc[0])
    metric = f"{str(curve['metric'].iloc[0]).upper()}@{int(curve['k'].iloc[0])}"
    xs_all = list(pos.values())
    x_lo, x_hi = min(xs_all) / 1.6, max(xs_all) * 1.6
    for i, seg in enumerate(segs):
        r, c = i // cols + 1, i % cols + 1
        g_seg = curve[curve["segment"] == seg]
        # The reference: best target-only baseline of each point (dashed zero line).
        fig.add_scatter(
            x=[x_lo, x_hi],
            y=[0, 0],
            mode="lines",
            line=dict(color="#6b6f7b", width=1.5, dash="dash"),
            name="best target-only baseline (Δ = 0)",
            legendgroup="baseline",
            showlegend=i == 0,
            hoverinfo="skip",
            row=r,
            col=c,
        )
        for name in strategies:
            g = g_seg[g_seg["strategy"] == name].copy()
            g["_x"] = g["value"].map(pos)
            g = g[g["delta"].notna()].sort_values("_x")
            if g.empty:
                continue
            col = colors[name]
            fig.add_scatter(
                x=np.concatenate([g["_x"], g["_x"][::-1]]),
                y=np.concatenate([g["ci_high"], g["ci_low"][::-1]]),
                fill="toself",
                fillcolor=_alpha(col, 0.14),
                mode="lines",  # without it plotly marks the band's corners
                line=dict(width=0),
                hoverinfo="skip",
                showlegend=False,
                legendgroup=name,
                row=r,
                col=c,
            )
            # filled: claimed (interval off zero and it survives Holm's correction)
            claimed = g["significant"].astype(bool)
            fig.add_scatter(
                x=g["_x"],
                y=g["delta"],
                name=name,
                mode="lines+markers",
                line=dict(color=col, width=2.5),
                marker=dict(
                    size=9,
                    color=[col if e else "white" for e in claimed],
                    line=dict(color=col, width=2),
                ),
                legendgroup=name,
                showlegend=i == 0,
                customdata=np.stack(
                    [
                        g["value"].astype(str),
                        g["ci_low"],
                        g["ci_high"],
                        g["baseline"].fillna("none").astype(str),
                        g["n_users"],
                        g["p_holm"],
                    ],
                    axis=1,
                ),
                hovertemplate=(
                    f"{name}, {segment_label(seg)}<br>value %{{customdata[0]}}: "
                    "Δ %{y:+.4f} [%{customdata[1]:+.4f}, %{customdata[2]:+.4f}]"
                    "<br>vs %{customdata[3]}, %{customdata[4]} users"
                    "<br>Holm-adjusted p %{customdata[5]:.3g}<extra></extra>"
                ),
                row=r,
                col=c,
            )
    fig.update_xaxes(
        type="log",
        range=[np.log10(x_lo), np.log10(x_hi)],
        tickvals=ticks,
        ticktext=ticktext,
        showgrid=True,
        gridcolor="#eceef2",
    )
    for c in range(1, cols + 1):  # under the lowest panel of each column
        last = max(i // cols + 1 for i in range(n) if i % cols + 1 == c)
        fig.update_xaxes(title_text=FACTOR_AXIS.get(factor, factor), row=last, col=c)
    for r in range(1, rows + 1):
        fig.update_yaxes(title_text=f"Δ {metric}", row=r, col=1)
    fig.update_yaxes(zeroline=False)
    fig.update_annotations(font=dict(size=14))
    return style(
        fig,
        f"Gain over the best target-only baseline, {metric} (95% paired intervals)",
        height=110 + 300 * rows,
    )


def _log_ticks(lo: float, hi: float) -> list[float]:
    """1, 2, 5, 10, 20, 50... between lo and hi (fewer when the range is wide)."""
    steps = (1, 2, 5) if hi / max(lo, 1) < 1e4 else (1,)
    out = [m * 10**e for e in range(0, 10) for m in steps]
    return [t for t in out if lo * 0.8 <= t <= hi * 1.25]


def _alpha(hex_color: str, a: float) -> str:
    h = hex_color.lstrip("#")
    r, g, b = (int(h[i : i + 2], 16) for i in (0, 2, 4))
    return f"rgba({r},{g},{b},{a})"
