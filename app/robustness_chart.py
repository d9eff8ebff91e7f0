"""Where does this model stop working? The robustness record of a shipped checkpoint (accuracy +- s.e. under
each named shift, docs/robustness.json, written by scripts/robustness_table.py) as one chart.

The numbers come from :func:`eqlens.experiments.robustness.model_robustness`; this module only draws them.
"""

from __future__ import annotations

from pathlib import Path

import plotly.graph_objects as go
import streamlit as st

from app import figures, markup, settings

RECORD = settings.ROOT / "docs" / "robustness.json"


def checkpoint_name(key: str) -> str | None:
    """The checkpoint folder's name of a catalog key (``ckpt:<path>``); None for other models."""
    return Path(key.partition(":")[2]).name if key.startswith("ckpt:") else None


def robustness_figure(chart: dict, label: str) -> go.Figure:
    """Accuracy per shift (the unshifted population first) with binomial s.e. bars and the chance line.

    ``chart``: :func:`eqlens.experiments.robustness.model_robustness`'s dict."""
    rows = chart["rows"]
    names = [r["shift"] for r in rows]
    colours = [figures.PALETTE[1] if r["shift"] == "none" else
               figures.PALETTE[3] if r["accuracy"] - 2 * r["accuracy_se"] > chart["chance"] else figures.PALETTE[2]
               for r in rows]
    bars = dict(type="bar", x=names, y=[r["accuracy"] for r in rows], marker=dict(color=colours),
                error_y=dict(type="data", array=[r["accuracy_se"] for r in rows], visible=True, thickness=1.5),
                customdata=[[r["n"], r["accuracy_se"], r["description"] + (f" ({r['input_note']})"
                                                                           if r.get("input_note") else "")]
                            for r in rows],
                hovertemplate="%{x}: %{y:.3f} ± %{customdata[1]:.3f} on %{customdata[0]} lenses"
                              "<br>%{customdata[2]}<extra></extra>", name="accuracy")
    chance = dict(type="scatter", mode="lines", x=[names[0], names[-1]], y=[chart["chance"]] * 2,
                  line=dict(color="gray", dash="dot"), name=f"chance ({chart['chance']:.2f})",
                  hovertemplate=f"chance: {chart['chance']:.3f}<extra></extra>")
    return figures._figure([bars, chance], f"Where does {label} stop working? Accuracy under each shift",
                           height=420, showlegend=True,
                           xaxis=dict(title=dict(text="test lenses (unshifted population first)"), tickangle=-35),
                           yaxis=dict(title=dict(text="accuracy ± s.e."), range=[0, 1.02]),
                           legend=dict(orientation="h", y=1.08, x=1, xanchor="right"))


@st.cache_data(show_spinner=False, max_entries=4)
def _record(path: str, mtime: float) -> dict | None:
    from eqlens.experiments.robustness import load_record

    return load_record(path)


def robustness_section(key: str) -> None:
    """The chart of the checkpoint behind catalog ``key`` with its caption; a line saying how to make one
    when the record lacks it."""
    from eqlens.experiments.robustness import model_robustness

    name = checkpoint_name(key)
    if name is None:
        return
    record = _record(str(RECORD), RECORD.stat().st_mtime) if RECORD.is_file() else None
    chart = model_robustness(record, name)
    st.subheader("Where does this model stop working?")
    if chart is None:
        st.caption(f"No robustness record for {markup.text(name)} yet: `python scripts/robustness_table.py` "
                   "scores every checkpoint in checkpoints/ and writes docs/robustness.json.")
        return
    st.plotly_chart(robustness_figure(chart, name), key="robustness_chart", width="stretch", theme=None)
    skipped = "; ".join(f"{s['shift']}: {s['reason']}" for s in chart["skipped"])
    st.caption(f"Accuracy ± binomial s.e. on {chart['size']} fresh test lenses per shift (its card's test "
               f"stream), every shift relative to its training population ({markup.text(chart['population'])}); "
               "green bars lie more than 2 s.e. above chance, pink ones do not. Hover a bar for what the shift "
               f"changes. Not scored: {markup.text(skipped) if skipped else 'none'}.")
