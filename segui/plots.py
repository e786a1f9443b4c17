"""Plotly figures of the Model screen, built from what Studio returns (plain data in,
``plotly.graph_objects.Figure`` out; shown with ``gr.Plot``). No Gradio here, so each
figure can be checked without a browser."""
from __future__ import annotations

import numpy as np
import plotly.graph_objects as go

FONT = dict(size=15)
RUNNING_MEAN = 10   # the correction history's line: the mean of the last this many submissions


def _empty(title: str, note: str) -> go.Figure:
    fig = go.Figure()
    fig.update_layout(title=title, font=FONT, xaxis=dict(visible=False), yaxis=dict(visible=False),
                      annotations=[dict(text=note, showarrow=False, x=0.5, y=0.5, xref="paper", yref="paper",
                                        font=dict(size=16))], height=360, margin=dict(l=40, r=20, t=50, b=40))
    return fig


def iou_history_figure(h: dict, colors: dict[str, str] | None = None) -> go.Figure:
    """Per-class IoU across model versions (``Studio.iou_history``): one line per
    class (in its label-set colour), the mIoU as a thick black line; the hover says
    where each figure comes from."""
    title = "IoU per class across model versions"
    rows = h["versions"]
    if not rows:
        return _empty(title, "No version has per-class IoU yet: evaluate one on this project's val images.")
    x = [r["version"] + (" (active)" if r["active"] else "") for r in rows]
    fig = go.Figure()
    for k, name in enumerate(h["classes"]):
        y = [r["iou"][k] for r in rows]
        if all(v is None for v in y):
            continue
        fig.add_trace(go.Scatter(
            x=x, y=y, mode="lines+markers", name=name, connectgaps=False,
            line=dict(width=2, color=(colors or {}).get(name)), marker=dict(size=8),
            customdata=[r["source"] for r in rows],
            hovertemplate=f"{name}<br>%{{x}}: IoU %{{y:.3f}}<br>%{{customdata}}<extra></extra>"))
    fig.add_trace(go.Scatter(x=x, y=[r["miou"] for r in rows], mode="lines+markers", name="mIoU",
                             line=dict(width=5, color="#111111"), marker=dict(size=11, symbol="diamond"),
                             customdata=[r["source"] for r in rows],
                             hovertemplate="mIoU<br>%{x}: %{y:.3f}<br>%{customdata}<extra></extra>"))
    fig.update_layout(title=title, font=FONT, yaxis=dict(title="IoU", range=[0, 1.02]),
                      xaxis=dict(title="model version", type="category"), height=420,
                      legend=dict(font=dict(size=13)), margin=dict(l=50, r=20, t=50, b=50), hovermode="closest")
    return fig


def _padded(v: np.ndarray, top: float = 0.1) -> list[float]:
    """An axis range around ``v`` with room for the text labels above the points."""
    lo, hi = float(np.min(v)), float(np.max(v))
    span = max(hi - lo, 1e-6)
    return [lo - 0.12 * span, hi + (0.12 + top) * span]


def label_map_figure(m: dict, colors: dict[str, str] | None = None) -> go.Figure:
    """The class words in 2D (``Studio.label_set_map``): a point per word, a dashed
    line between words that sit too close, a red line between words the model
    confuses on val (thicker: more confused)."""
    xy = np.asarray(m["xy"])
    names = m["names"]
    pos = {n: xy[i] for i, n in enumerate(names)}
    fig = go.Figure()
    for a, b, s in m["close"]:
        fig.add_trace(go.Scatter(x=[pos[a][0], pos[b][0]], y=[pos[a][1], pos[b][1]], mode="lines",
                                 line=dict(color="#f59e0b", width=3, dash="dash"), hoverinfo="skip",
                                 name=f"too close: {a} – {b} ({s:.2f})", showlegend=True))
    for a, b, share in (m["confused"] or [])[:12]:
        fig.add_trace(go.Scatter(x=[pos[a][0], pos[b][0]], y=[pos[a][1], pos[b][1]], mode="lines",
                                 line=dict(color="#dc2626", width=2 + 20 * min(share, 0.5)), opacity=0.6,
                                 hoverinfo="skip", name=f"confused on val: {a} – {b} ({100 * share:.0f}%)"))
    fig.add_trace(go.Scatter(
        x=xy[:, 0], y=xy[:, 1], mode="markers+text", text=names, textposition="top center",
        textfont=dict(size=17, color="#111111"), name="class words", showlegend=False,
        marker=dict(size=16, color=[(colors or {}).get(n, "#2563eb") for n in names], line=dict(width=2, color="#000")),
        hovertemplate="%{text}<extra></extra>"))
    fig.update_layout(
        title=f"Class words in 2D (PCA: {100 * m['explained']:.0f}% of the variance)",
        font=FONT, height=480, margin=dict(l=40, r=20, t=50, b=40),
        xaxis=dict(title="first principal axis", zeroline=False, range=_padded(xy[:, 0])),
        yaxis=dict(title="second", zeroline=False, range=_padded(xy[:, 1], top=0.18)),
        legend=dict(font=dict(size=12), orientation="h", y=-0.15))
    return fig


def similarity_figure(m: dict) -> go.Figure:
    """The words' pairwise cosine similarity as a heatmap with its values written in."""
    names = m["names"]
    sim = np.asarray(m["similarity"], float)
    text = [[f"{v:.2f}" for v in row] for row in sim]
    fig = go.Figure(go.Heatmap(
        z=sim, x=names, y=names, zmin=-1, zmax=1, colorscale="RdBu_r", text=text, texttemplate="%{text}",
        textfont=dict(size=12), colorbar=dict(title="cosine"),
        hovertemplate="%{y} – %{x}: %{z:.3f}<extra></extra>"))
    fig.update_layout(title=f"Pairwise similarity (too close: ≥ {m['threshold']:.2f})", font=FONT, height=480,
                      margin=dict(l=40, r=20, t=50, b=40), yaxis=dict(autorange="reversed"),
                      xaxis=dict(tickangle=-40))
    return fig


def correction_history_figure(h: dict) -> go.Figure:
    """What labellers changed of each prediction (``Studio.correction_history``): one
    point per submitted image in the order submitted, coloured by the model version
    that predicted it, and the mean of the last RUNNING_MEAN as a line."""
    title = "What labellers changed of each prediction, image after image"
    rows = h["rows"]
    if not rows:
        return _empty(title, "No submission recorded yet.")
    fig = go.Figure()
    for v in dict.fromkeys(r["version"] for r in rows):
        rs = [r for r in rows if r["version"] == v]
        fig.add_trace(go.Scatter(
            x=[r["n"] for r in rs], y=[100 * r["changed"] for r in rs], mode="markers",
            name=f"predicted by {v}" if v else "predicted", marker=dict(size=9),
            customdata=[[r["name"], r["fixes"], r["author"], r["when"]] for r in rs],
            hovertemplate=("#%{x} %{customdata[0]}<br>%{y:.1f}% of the pixels changed, %{customdata[1]} fixes"
                           "<br>%{customdata[2]}, %{customdata[3]}<extra></extra>")))
    y = np.array([100 * r["changed"] for r in rows])
    run = [float(y[max(0, i + 1 - RUNNING_MEAN):i + 1].mean()) for i in range(len(y))]
    label = f"mean of the last {RUNNING_MEAN}"
    fig.add_trace(go.Scatter(x=[r["n"] for r in rows], y=run, mode="lines", name=label,
                             line=dict(width=4, color="#111111"), hovertemplate=label + ": %{y:.1f}%<extra></extra>"))
    fig.update_layout(title=title, font=FONT, height=380, margin=dict(l=50, r=20, t=50, b=50),
                      xaxis=dict(title="submitted image (first submissions, in order)", tick0=1,
                                 dtick=max(1, round(len(rows) / 10))),
                      yaxis=dict(title="% of the prediction changed", rangemode="tozero"),
                      legend=dict(font=dict(size=13)), hovermode="closest")
    return fig
