"""Every figure of the app, in one visual style.

Plotly for what people hover and click (probabilities, orbit curves, confusion matrix, ROC,
training curves); composed PNGs (numpy + PIL, 1-10 ms) for image grids (group channels,
attention, attributions), each with a labelled colour bar. No st.* here.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
import plotly.graph_objects as go
import plotly.io as pio
from matplotlib import colormaps
from PIL import Image, ImageDraw, ImageFont

BACKGROUND = (14, 17, 23)
TEXT = (230, 230, 230)
PALETTE = ("#f2a541", "#4cc9f0", "#f72585", "#7bd389", "#b388eb", "#ff8c61", "#a0a0a0", "#ffd166")
# Lines that must stay apart when many share a chart (the error anatomy: up to 9 scene parameters): hues far
# from each other on the dark template, none of them the gray of reference lines.
DISTINCT_PALETTE = ("#f2a541", "#4cc9f0", "#f72585", "#7bd389", "#b388eb", "#ffd166", "#3a86ff", "#ff5d5d",
                    "#2ec4b6", "#e0e0e0")
TEMPLATE = "plotly_dark"


def _figure(data: list[dict], title: str, height: int = 320, **layout) -> go.Figure:
    """A figure from plain trace/layout dicts in the app's style. Built without plotly's
    per-property validation (``_validate=False``): that validation was most of a slider move's
    figure cost (~50 ms for the orbit plot); the dicts here are fixed and tested."""
    # The template goes in whole: without validation plotly would not resolve its name.
    base = dict(template=pio.templates[TEMPLATE].to_plotly_json(), title=dict(text=title, x=0.01, font=dict(size=14)),
                height=height,
                margin=dict(l=50, r=20, t=40, b=40), paper_bgcolor="rgba(0,0,0,0)",
                legend=dict(orientation="h", y=-0.22))
    return go.Figure(data=data, layout={**base, **layout}, _validate=False)


def _vline(x: float, color: str, width: float = 1.0, dash: str = "solid") -> dict:
    return dict(type="line", xref="x", yref="paper", x0=x, x1=x, y0=0, y1=1, line=dict(color=color, width=width,
                                                                                       dash=dash))


# ---- plotly ------------------------------------------------------------------------------------

def probability_bar(class_names: Sequence[str], probabilities: np.ndarray, logits: np.ndarray,
                    title: str = "Class probabilities") -> go.Figure:
    labels = [f"p {p:.3f}<br>logit {z:+.3f}" for p, z in zip(probabilities, logits, strict=True)]
    bar = dict(type="bar", x=list(class_names), y=np.asarray(probabilities).tolist(),
               marker=dict(color=list(PALETTE[: len(class_names)])), text=labels, textposition="outside",
               cliponaxis=False)
    return _figure([bar], title, height=300, showlegend=False,
                   yaxis=dict(range=[0, 1.15], title=dict(text="probability")))


def orbit_figure(curves: dict, class_names: Sequence[str] | Mapping[str, Sequence[str]], current_angle: float,
                 exact_angles: Sequence[float], quantity: str = "probabilities",
                 title: str = "Over the whole orbit") -> go.Figure:
    """``curves``: label -> OrbitResult. One line per (model, class); solid for the first model,
    dashed for the second; the current angle as a vertical line; the group's exact angles dotted.
    ``class_names``: one list for every model, or label -> that model's own class names (models
    with different classes); a class has the same colour in every model that has it."""
    def names_of(label: str) -> Sequence[str]:
        return class_names[label] if isinstance(class_names, Mapping) else class_names

    palette_order = list(dict.fromkeys(name for label in curves for name in names_of(label)))
    data, dashes = [], ("solid", "dash", "dot")
    for m, (label, res) in enumerate(curves.items()):
        values = getattr(res, quantity)
        names = names_of(label)
        if values.shape[1] != len(names):
            raise ValueError(f"{label}: {values.shape[1]} outputs but {len(names)} class names")
        angles = np.append(res.angles, 360.0).tolist()
        for k, name in enumerate(names):
            y = np.append(values[:, k], values[0, k]).tolist()  # close the circle at 360 deg
            colour = PALETTE[palette_order.index(name) % len(PALETTE)]
            data.append(dict(type="scatter", x=angles, y=y, mode="lines",
                             name=f"{label}: {name}" if len(curves) > 1 else name,
                             line=dict(color=colour, dash=dashes[m % 3], width=2)))
    shapes = [_vline(a, "rgba(255,255,255,0.25)", dash="dot") for a in exact_angles]
    shapes.append(_vline(current_angle, "white", 1.5))
    marker = dict(x=current_angle, y=1, xref="x", yref="paper", text=f"{current_angle:g} deg", showarrow=False,
                  yanchor="bottom")
    y_title = {"probabilities": "probability", "logits": "logit"}.get(quantity, quantity)
    return _figure(data, title, height=340, shapes=shapes, annotations=[marker],
                   xaxis=dict(title=dict(text="rotation angle (deg)"), range=[0, 360], dtick=45),
                   yaxis=dict(title=dict(text=y_title), range=[0, 1] if quantity == "probabilities" else None))


def regression_orbit_figure(angles: np.ndarray, values: np.ndarray, name: str, unit: str, current_angle: float,
                            exact_angles: Sequence[float], truth: float | None = None,
                            title: str = "Prediction over the whole orbit") -> go.Figure:
    """A regression model's value ``[A]`` (physical units) against the angle ``[A]`` (deg), the
    circle closed at 360 deg; the simulator's truth as a horizontal dashed line when known."""
    x = np.append(np.asarray(angles, dtype=np.float64), 360.0).tolist()
    y = np.append(values, values[0]).tolist()
    data = [dict(type="scatter", x=x, y=y, mode="lines", name=f"predicted {name}",
                 line=dict(color=PALETTE[0], width=2))]
    shapes = [_vline(a, "rgba(255,255,255,0.25)", dash="dot") for a in exact_angles]
    shapes.append(_vline(current_angle, "white", 1.5))
    if truth is not None:
        shapes.append(dict(type="line", xref="paper", yref="y", x0=0, x1=1, y0=truth, y1=truth,
                           line=dict(color=PALETTE[1], width=1.5, dash="dash")))
        data.append(dict(type="scatter", x=[None], y=[None], mode="lines", name=f"true {truth:.4f}",
                         line=dict(color=PALETTE[1], dash="dash")))  # legend entry for the truth line
    marker = dict(x=current_angle, y=1, xref="x", yref="paper", text=f"{current_angle:g} deg", showarrow=False,
                  yanchor="bottom")
    return _figure(data, title, height=340, shapes=shapes, annotations=[marker],
                   xaxis=dict(title=dict(text="rotation angle (deg)"), range=[0, 360], dtick=45),
                   yaxis=dict(title=dict(text=f"{name} [{unit}]" if unit else name)))


def confusion_figure(confusion: np.ndarray, class_names: Sequence[str]) -> go.Figure:
    """Counts heatmap (true class down, predicted across) with an almost invisible scatter over the
    cells: plotly heatmaps return no click selection, scatter points do (point_index = row*K+col)."""
    confusion = np.asarray(confusion)
    k, names = len(class_names), list(class_names)
    heat = dict(type="heatmap", z=confusion.tolist(), x=names, y=names, colorscale="Viridis",
                colorbar=dict(title=dict(text="images")), text=confusion.tolist(), texttemplate="%{text}",
                hoverinfo="skip")
    cells = dict(type="scatter", x=[names[c] for r in range(k) for c in range(k)],
                 y=[names[r] for r in range(k) for c in range(k)], mode="markers",
                 marker=dict(size=60, opacity=0.01, symbol="square"), hoverinfo="none", showlegend=False)
    return _figure([heat, cells], "Confusion matrix (click a cell)", height=380, clickmode="event+select",
                   xaxis=dict(title=dict(text="predicted")),
                   yaxis=dict(title=dict(text="true"), autorange="reversed"))


def roc_figure(roc: dict) -> go.Figure:
    """``roc``: class name -> dict(fpr=[...], tpr=[...], auc=float) (one-vs-rest)."""
    data = []
    for k, (name, curve) in enumerate(roc.items()):
        auc = curve.get("auc")
        data.append(dict(type="scatter", x=list(curve["fpr"]), y=list(curve["tpr"]), mode="lines",
                         name=f"{name} (AUC {auc:.3f})" if auc is not None else name,
                         line=dict(color=PALETTE[k % len(PALETTE)], width=2)))
    data.append(dict(type="scatter", x=[0, 1], y=[0, 1], mode="lines", line=dict(color="gray", dash="dot"),
                     showlegend=False))
    return _figure(data, "ROC, one class against the rest", height=380,
                   xaxis=dict(title=dict(text="false positive rate"), range=[0, 1]),
                   yaxis=dict(title=dict(text="true positive rate"), range=[0, 1.02]))


_LOSS_PANEL = dict(domain=[0.0, 0.45])
_SCORE_PANEL = dict(domain=[0.55, 1.0])
_ACCURACY_AXIS = dict(range=[0, 1.02], tickmode="linear", tick0=0, dtick=0.2, tickformat=".0%")


def _two_panels(data: list[dict], title: str, x_title: str, score: str, log_loss: bool = False,
                height: int = 340) -> go.Figure:
    """Loss on the left, ``score`` (accuracy: 0-100 %; else its own range) on the right, one shared legend
    above the plot, clear of both panels' tick labels."""
    loss_axis = dict(title=dict(text="loss" + (" (log)" if log_loss else "")), type="log" if log_loss else "linear")
    score_axis = dict(title=dict(text=score), anchor="x2", **(_ACCURACY_AXIS if score == "accuracy" else {}))
    return _figure(data, title, height=height, margin=dict(l=55, r=20, t=80, b=45),
                   legend=dict(orientation="h", x=0, xanchor="left", y=1.02, yanchor="bottom"),
                   xaxis=dict(title=dict(text=x_title), anchor="y", **_LOSS_PANEL),
                   yaxis=dict(anchor="x", **loss_axis),
                   xaxis2=dict(title=dict(text=x_title), anchor="y2", **_SCORE_PANEL), yaxis2=score_axis)


def training_curves(history: Sequence[dict]) -> go.Figure:
    """A running job's curves against epochs (``at_epoch`` of the job's records: 1.5 is half-way through
    the second epoch; older records: ``global_step``). Training loss and accuracy (regression: MAE) are the
    running means of each epoch so far (thin lines); validation values exist at each epoch's end only and are
    drawn there, as points joined epoch to epoch, never carried across the steps in between."""
    def position(i: int, h: dict) -> float:
        return h.get("at_epoch", h.get("global_step", i))

    score = "accuracy" if any("accuracy" in h or "val_accuracy" in h for h in history) else "mae"
    data = []
    for k, (key, axis, name) in enumerate((("loss", "1", "train loss"), ("val_loss", "1", "val loss"),
                                           (score, "2", f"train {score}"), (f"val_{score}", "2", f"val {score}"))):
        points = [(position(i, h), h[key]) for i, h in enumerate(history) if h.get(key) is not None]
        if not points:
            continue
        val = key.startswith("val_")
        xs, ys = (list(v) for v in zip(*points, strict=True))
        data.append(dict(type="scatter", x=xs, y=ys, name=name, mode="lines+markers" if val else "lines",
                         xaxis="x" if axis == "1" else "x2", yaxis="y" if axis == "1" else "y2",
                         marker=dict(size=8, symbol="circle"), line=dict(color=PALETTE[k], width=2 if val else 1.2)))
    return _two_panels(data, "Training (validation at each epoch's end)", "epoch", score, height=320)


def smooth(values: Sequence[float | None], weight: float) -> list[float | None]:
    """Exponential moving average with TensorBoard's debiasing (``weight`` 0: the values as they are; 0.9:
    heavy); missing values stay missing and do not move the average."""
    out, average, mass = [], 0.0, 0.0
    for v in values:
        if v is None or not math.isfinite(v):
            out.append(None)
            continue
        average, mass = weight * average + (1 - weight) * v, weight * mass + (1 - weight)
        out.append(average / mass)
    return out


def run_history(runs: Mapping[str, Sequence[dict]], smoothing: float = 0.0, log_loss: bool = False) -> go.Figure:
    """Runs read back from their cards, overlaid: ``runs`` maps a label to the card's history (one record per
    epoch: ``train_loss``, ``val_loss``, ``train_accuracy``, ``val_accuracy``; regression: ``train_mae``,
    ``val_mae``). A run keeps its colour; training dashed, validation solid with points."""
    has_accuracy = any("val_accuracy" in h or "train_accuracy" in h for hist in runs.values() for h in hist)
    score = "accuracy" if has_accuracy else "mae"
    data = []
    for k, (label, hist) in enumerate(runs.items()):
        color = PALETTE[k % len(PALETTE)]
        epochs = [h.get("epoch", i + 1) for i, h in enumerate(hist)]
        first = True
        for key, axis in (("val_loss", "1"), ("train_loss", "1"), (f"val_{score}", "2"), (f"train_{score}", "2")):
            raw = [h.get(key) if isinstance(h.get(key), (int, float)) else None for h in hist]
            if all(v is None for v in raw):
                continue
            val = key.startswith("val_")
            data.append(dict(type="scatter", x=epochs, y=smooth(raw, smoothing), name=label, legendgroup=label,
                             showlegend=first, mode="lines+markers" if val else "lines", connectgaps=True,
                             hovertemplate=f"{label}<br>{key} %{{y:.4g}}, epoch %{{x}}<extra></extra>",
                             xaxis="x" if axis == "1" else "x2", yaxis="y" if axis == "1" else "y2",
                             marker=dict(size=6), line=dict(color=color, width=2 if val else 1.2,
                                                            dash="solid" if val else "dash")))
            first = False
    return _two_panels(data, "Runs per epoch (training dashed, validation solid)", "epoch", score, log_loss,
                       height=380 + 22 * max(0, len(runs) - 1))


# ---- composed PNG grids ------------------------------------------------------------------------

def _font(size: int = 13):
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1 has one fixed-size default font
        return ImageFont.load_default()


def colorize(values: np.ndarray, cmap: str, vmin: float, vmax: float) -> np.ndarray:
    """``[H, W]`` -> ``[H, W, 3]`` uint8 through a matplotlib colormap."""
    span = vmax - vmin if vmax > vmin else 1.0
    scaled = np.clip((np.asarray(values, dtype=np.float64) - vmin) / span, 0, 1)
    return (colormaps[cmap](scaled)[..., :3] * 255).astype(np.uint8)


def overlay(base: np.ndarray, heat: np.ndarray, cmap: str = "inferno", alpha: float = 0.6,
            symmetric: bool = False, limit: float | None = None) -> np.ndarray:
    """A heat map blended over a grey lens image, both ``[H, W]`` -> ``[H, W, 3]`` uint8.
    The heat is scaled to ``[min(0, heat), max(heat)]`` (symmetric about 0 for signed attributions;
    ``limit``: to ``[-limit, limit]``, beyond it clipped)."""
    grey = np.asarray(base, dtype=np.float64)
    grey = (grey - grey.min()) / max(grey.max() - grey.min(), 1e-12)
    grey_rgb = np.repeat((grey * 255)[..., None], 3, axis=-1)
    vmin, vmax = (-limit, limit) if limit else _range([heat], symmetric)
    vmin = min(vmin, 0.0)  # non-negative maps (attention) start at 0, so a bar "0 .. max" reads true
    heat_rgb = colorize(heat, cmap, vmin, vmax).astype(np.float64)
    peak = limit or max(np.abs(heat).max(), 1e-12)
    weight = alpha * (np.clip(np.abs(heat) / peak, 0, 1) if symmetric else 1.0)
    weight = np.asarray(weight)[..., None] if np.ndim(weight) else weight
    return (grey_rgb * (1 - weight) + heat_rgb * weight).astype(np.uint8)


def _range(arrays, symmetric: bool) -> tuple[float, float]:
    lo = min(float(np.min(a)) for a in arrays)
    hi = max(float(np.max(a)) for a in arrays)
    if symmetric:
        m = max(abs(lo), abs(hi), 1e-12)
        return -m, m
    return lo, hi if hi > lo else lo + 1e-12


def wrap_text(text: str, width: int, font) -> list[str]:
    """``text`` broken at spaces into lines at most ``width`` pixels wide in ``font`` (a word longer
    than the width stays whole)."""
    lines: list[str] = []
    for word in str(text).split():
        if lines and font.getlength(lines[-1] + " " + word) <= width:
            lines[-1] += " " + word
        else:
            lines.append(word)
    return lines or [""]


LINE_H = 15  # pixels per line of a panel title or colour bar label (13-px font)
BAR_TOP = 8  # the colour bar's ramp starts this far down its image (room for the top tick's text)


def _colorbar(height: int, cmap: str, vmin: float, vmax: float, label: str, clipped: bool = False) -> Image.Image:
    """A vertical colour bar (its ramp from ``BAR_TOP`` down), its label wrapped below it;
    ``clipped``: the ends read "<=" and ">="."""
    bar_w, width, top = 14, 104, BAR_TOP
    font = _font(12)
    lines = wrap_text(label, width, font)
    ramp = np.linspace(1, 0, height)[:, None].repeat(bar_w, axis=1)
    strip = Image.fromarray(colorize(ramp, cmap, 0, 1))
    canvas = Image.new("RGB", (width, top + height + 10 + LINE_H * len(lines)), BACKGROUND)
    canvas.paste(strip, (0, top))
    draw = ImageDraw.Draw(canvas)
    for k, line in enumerate(lines):
        draw.text((0, top + height + 8 + k * LINE_H), line, fill=TEXT, font=font)
    for frac, value, sign in ((0.0, vmax, ">= " if clipped else ""), (0.5, (vmin + vmax) / 2, ""),
                              (1.0, vmin, "<= " if clipped else "")):
        y = top + int(frac * (height - 1))
        draw.line([(bar_w, y), (bar_w + 4, y)], fill=TEXT)
        draw.text((bar_w + 6, y - 7), f"{sign}{value:.3g}", fill=TEXT, font=font)
    return canvas


def image_grid(panels: Sequence[tuple[str, np.ndarray]], cmap: str = "magma", symmetric: bool = False,
               cell: int = 150, columns: int | None = None, shared_scale: bool = True,
               colorbar_label: str = "value", overlay_range: tuple[float, float] | None = None,
               value_range: tuple[float, float] | None = None) -> Image.Image:
    """One PNG of titled panels. A panel is ``[H, W]`` (coloured through ``cmap`` on one shared
    scale, shown in a colour bar) or ``[H, W, 3]`` uint8 (already coloured, e.g. an overlay; give
    ``overlay_range``, the scale its colours stand for, to get a colour bar for it too).
    ``value_range``: the shared scale, values beyond it clipped (the bar's ends say so). Titles
    wrap to the cell's width."""
    if not panels:
        raise ValueError("image_grid needs at least one panel")
    columns = columns or min(len(panels), 8)
    rows = math.ceil(len(panels) / columns)
    scalar = [np.asarray(p) for _, p in panels if np.ndim(p) == 2]
    vmin, vmax = value_range or (_range(scalar, symmetric) if scalar else (overlay_range or (0.0, 1.0)))
    font = _font(13)
    titles = [wrap_text(title, cell, font) for title, _ in panels]
    title_h, gap = 3 + LINE_H * max(len(t) for t in titles), 6
    width = columns * (cell + gap) + gap
    height = rows * (cell + title_h + gap) + gap
    bar = (_colorbar(cell * rows if rows > 1 else cell, cmap, vmin, vmax, colorbar_label,
                     clipped=value_range is not None) if scalar or overlay_range else None)
    height = max(height, bar.height + gap + title_h - BAR_TOP) if bar else height
    canvas = Image.new("RGB", (width + (bar.width + gap if bar else 0), height), BACKGROUND)
    draw = ImageDraw.Draw(canvas)
    for i, (lines, (_, panel)) in enumerate(zip(titles, panels, strict=True)):
        panel = np.asarray(panel)
        if panel.ndim == 2:
            lo, hi = (vmin, vmax) if shared_scale else _range([panel], symmetric)
            rgb = colorize(panel, cmap, lo, hi)
        else:
            rgb = panel.astype(np.uint8)
        r, c = divmod(i, columns)
        x0, y0 = gap + c * (cell + gap), gap + r * (cell + title_h + gap)
        for k, line in enumerate(lines):  # bottom-aligned above the cell
            draw.text((x0, y0 + title_h - 3 - LINE_H * (len(lines) - k)), line, fill=TEXT, font=font)
        resample = Image.NEAREST if max(rgb.shape[:2]) < cell / 2 else Image.BILINEAR
        canvas.paste(Image.fromarray(rgb).resize((cell, cell), resample), (x0, y0 + title_h))
    if bar:
        canvas.paste(bar, (width, gap + title_h - BAR_TOP))
    return canvas


def lens_with_truth(image: np.ndarray, truth: dict | None, size: int = 360,
                    marker: tuple = (76, 201, 240), how: str = "log") -> Image.Image:
    """The lens (grey, ``how``-stretched counts) with the simulator's truth drawn on: subhalos as
    circles growing with log mass, the vortex line, the Einstein ring. Positions come from the
    truth's pixel coordinates (``subhalo_pixels``, ``vortex_pixels``: (col, row), pixel centres
    at integers), so the overlay follows the image's own array layout."""
    img = stretch(np.asarray(image, dtype=np.float64), how)
    grey = colorize(img, "gray", float(img.min()), float(img.max()))
    canvas = Image.fromarray(grey).resize((size, size), Image.BILINEAR)
    if not truth:
        return canvas
    h, w = img.shape
    zoom = size / w  # display pixels per image pixel

    def to_xy(col_row):
        return (float(col_row[0]) + 0.5) * zoom, (float(col_row[1]) + 0.5) * zoom

    draw = ImageDraw.Draw(canvas)
    if truth.get("theta_E") and truth.get("pixel_scale"):
        r = float(truth["theta_E"]) / float(truth["pixel_scale"]) * zoom
        draw.ellipse([size / 2 - r, size / 2 - r, size / 2 + r, size / 2 + r], outline=(242, 165, 65), width=1)
    pixels = truth.get("subhalo_pixels") or []
    masses = np.asarray(truth.get("subhalo_masses") or [1.0] * len(pixels), dtype=np.float64)
    if len(pixels):
        logm = np.log10(np.clip(masses, 1.0, None))
        radii = 2 + 5 * (logm - logm.min()) / max(logm.max() - logm.min(), 1e-9)
        for p, r in zip(pixels, radii, strict=True):
            cx, cy = to_xy(p)
            draw.ellipse([cx - r, cy - r, cx + r, cy + r], outline=marker, width=2)
    ends = truth.get("vortex_pixels")
    if ends:
        draw.line([to_xy(ends[0]), to_xy(ends[1])], fill=(247, 37, 133), width=3)
    return canvas


def mark_point(rgb: np.ndarray, row: int, col: int, color=(255, 255, 255), arm: int = 2) -> np.ndarray:
    """A small cross at pixel (row, col) of an ``[H, W, 3]`` image (the attention query)."""
    out = rgb.copy()
    h, w = out.shape[:2]
    out[max(row - arm, 0):min(row + arm + 1, h), col] = color
    out[row, max(col - arm, 0):min(col + arm + 1, w)] = color
    return out


# ---- lenses in arcsec (plotly), stretches, group elements, the commutative diagram ------------------

STRETCHES = ("log", "asinh", "linear")


def stretch(image: np.ndarray, how: str = "log") -> np.ndarray:
    """Display stretch of ``[H, W]`` values (counts or normalised), offset to start at 0:
    ``log`` log(1 + x), ``asinh`` asinh(x / s) with ``s`` a tenth of the 99th percentile (faint arcs
    show, the peak does not saturate), ``linear`` as is."""
    img = np.asarray(image, dtype=np.float64)
    img = np.clip(img - img.min(), 0, None)
    if how == "log":
        return np.log1p(img / max(np.percentile(img, 99), 1e-12) * 100)
    if how == "asinh":
        return np.arcsinh(img / max(0.1 * np.percentile(img, 99), 1e-12))
    if how != "linear":
        raise ValueError(f"unknown stretch {how!r}; use one of {', '.join(STRETCHES)}")
    return img


def element_label(g) -> str:
    """A group element in a few characters for panel titles: ``90°``, ``flip, 270°`` (mirror first)."""
    return ("flip, " if g.flip else "") + f"{g.angle_deg:g}°"


def _turn_points(points: np.ndarray, angle: float, flip: bool, centre: float) -> np.ndarray:
    """``[n, 2]`` (col, row) pixel positions as the picture shows them after a mirror (if ``flip``)
    and a counter-clockwise turn by ``angle`` deg on the screen (row 0 on top)."""
    u = points[:, 0] - centre
    v = points[:, 1] - centre
    if flip:
        u = -u
    t = math.radians(angle)
    return np.stack([u * math.cos(t) + v * math.sin(t) + centre, -u * math.sin(t) + v * math.cos(t) + centre], axis=1)


def lens_figure(image: np.ndarray, title: str, pixel_scale: float | None = None, truth: dict | None = None,
                angle: float = 0.0, flip: bool = False, how: str = "log", colorbar_label: str | None = None,
                height: int = 330) -> go.Figure:
    """A lens ``[H, W]`` as a plotly heatmap, axes in arcsec from the centre (pixels when
    ``pixel_scale`` is None; row 0 on top, as the DeepLense files are shown, so y grows downward),
    the ``how`` stretch in grey, and the simulator's truth drawn on with a legend: subhalos (circles
    growing with log mass, hover: mass), the vortex, the Einstein ring. ``image`` is shown as given
    (already turned); ``angle``/``flip`` turn the truth's positions the same way."""
    img = np.asarray(image, dtype=np.float64)
    n = img.shape[-1]
    scale = pixel_scale or 1.0
    unit = "arcsec" if pixel_scale else "px"
    axis = ((np.arange(n) - (n - 1) / 2) * scale).round(4).tolist()
    shown = stretch(img, how)
    lo, hi = float(shown.min()), float(shown.max())
    # The picture as an 8-bit PNG in an image trace (~20 kB, where a heatmap's numbers were ~0.5 MB of
    # JSON per slider move); an invisible scatter carries the colour bar of the same scale.
    picture = dict(type="image", source="data:image/png;base64," + encode_map(shown, lo, hi), x0=axis[0], dx=scale,
                   y0=axis[0], dy=scale, hoverinfo="skip")
    bar = dict(type="scatter", x=[None], y=[None], mode="markers", showlegend=False, hoverinfo="skip",
               marker=dict(color=[lo, hi], colorscale=[[0.0, "#000000"], [1.0, "#ffffff"]], showscale=True,
                           colorbar=dict(title=dict(text=colorbar_label or f"{how} stretch", side="right"),
                                         thickness=10, len=0.8)))
    data = [picture, bar]
    c = (n - 1) / 2

    def to_axes(points) -> np.ndarray:
        return (_turn_points(np.asarray(points, dtype=np.float64).reshape(-1, 2), angle, flip, c) - c) * scale

    if truth:
        if truth.get("theta_E") and truth.get("pixel_scale"):
            r = float(truth["theta_E"]) / float(truth["pixel_scale"]) * scale
            t = np.linspace(0, 2 * np.pi, 121)
            data.append(dict(type="scatter", x=(r * np.cos(t)).tolist(), y=(r * np.sin(t)).tolist(), mode="lines",
                             name=f"Einstein ring, θ_E {float(truth['theta_E']):.3f}\"",
                             line=dict(color=PALETTE[0], width=1), hoverinfo="skip"))
        pixels = truth.get("subhalo_pixels") or []
        if len(pixels):
            masses = np.asarray(truth.get("subhalo_masses") or [1.0] * len(pixels), dtype=np.float64)
            logm = np.log10(np.clip(masses, 1.0, None))
            sizes = 6 + 10 * (logm - logm.min()) / max(logm.max() - logm.min(), 1e-9)
            xy = to_axes(pixels)
            data.append(dict(type="scatter", x=xy[:, 0].tolist(), y=xy[:, 1].tolist(), mode="markers",
                             name="subhalo (size: log mass)", customdata=masses.tolist(),
                             marker=dict(size=sizes.tolist(), color="rgba(0,0,0,0)",
                                         line=dict(color=PALETTE[1], width=2)),
                             hovertemplate="subhalo %{customdata:.3g} Msun (recipe units)<extra></extra>"))
        ends = truth.get("vortex_pixels")
        if ends:
            xy = to_axes(ends)
            mass = truth.get("axion_mass_ev")
            data.append(dict(type="scatter", x=xy[:, 0].tolist(), y=xy[:, 1].tolist(), mode="lines",
                             name="vortex" + (f", m_a {mass:.2e} eV" if mass else ""),
                             line=dict(color=PALETTE[2], width=3), hoverinfo="skip"))
    span = [axis[0] - scale / 2, axis[-1] + scale / 2]
    fig = _figure(data, title, height=height, margin=dict(l=50, r=10, t=36, b=40),
                   legend=dict(orientation="h", y=-0.2, font=dict(size=11)),
                   xaxis=dict(title=dict(text=f"x ({unit})"), range=span, constrain="domain", zeroline=False),
                   yaxis=dict(title=dict(text=f"y ({unit}), row 0 on top"), range=span[::-1], scaleanchor="x",
                              zeroline=False))
    fig.layout.title.font.size = 13
    return fig


def commutative_diagram(x: np.ndarray, gx: np.ndarray, lx: np.ndarray, rho_lx: np.ndarray, l_gx: np.ndarray,
                        g_label: str, error: float, cell: int = 130) -> Image.Image:
    """The equivariance square as a picture: ``x -> g x`` along the top, ``L`` down both sides,
    ``L(x) -> rho(g) L(x)`` along the bottom, and ``L(g x)`` beside it; the two ways round should
    give the same maps, and ``error`` (``|L(gx) - rho(g)L(x)| / |L(x)|``) says how close they are.
    Images ``[H, W]``: the input (grey) and one orientation channel of the lifted maps (magma, one
    scale)."""
    gap, arrow, title_h = 10, 90, 18
    font, small = _font(13), _font(12)
    width = 3 * cell + 2 * arrow + 2 * gap
    height = 2 * (cell + title_h) + arrow + 2 * gap + 24
    canvas = Image.new("RGB", (width, height), BACKGROUND)
    draw = ImageDraw.Draw(canvas)
    lo, hi = _range([lx, rho_lx, l_gx], False)
    col_x = [gap, gap + cell + arrow, gap + 2 * (cell + arrow)]
    row_y = [gap, gap + cell + title_h + arrow]

    def put(img, col, row, title, cmap, vmin, vmax):
        x0, y0 = col_x[col], row_y[row]
        draw.text((x0, y0), title, fill=TEXT, font=font)
        rgb = colorize(img, cmap, vmin, vmax)
        canvas.paste(Image.fromarray(rgb).resize((cell, cell), Image.BILINEAR), (x0, y0 + title_h))

    def arrow_(p0, p1, label, colour=TEXT):
        draw.line([p0, p1], fill=colour, width=2)
        ang = math.atan2(p1[1] - p0[1], p1[0] - p0[0])
        for side in (-1, 1):
            a = ang + math.pi - side * 0.45
            draw.line([p1, (p1[0] + 10 * math.cos(a), p1[1] + 10 * math.sin(a))], fill=colour, width=2)
        mx, my = (p0[0] + p1[0]) / 2, (p0[1] + p1[1]) / 2
        if abs(p1[1] - p0[1]) < 1:  # horizontal: the label centred above the arrow
            draw.text((mx - small.getlength(label) / 2, my - 20), label, fill=colour, font=small)
        else:
            draw.text((mx + 8, my - 7), label, fill=colour, font=small)

    gx_lo, gx_hi = _range([x], False)
    put(x, 0, 0, "x (input)", "gray", gx_lo, gx_hi)
    put(gx, 1, 0, f"g x   (g = {g_label})", "gray", gx_lo, gx_hi)
    put(lx, 0, 1, "L(x)", "magma", lo, hi)
    put(rho_lx, 1, 1, "rho(g) L(x)", "magma", lo, hi)
    put(l_gx, 2, 1, "L(g x)", "magma", lo, hi)
    mid = title_h + cell // 2
    arrow_((col_x[0] + cell + 6, row_y[0] + mid), (col_x[1] - 6, row_y[0] + mid), "move by g")
    arrow_((col_x[0] + cell + 6, row_y[1] + mid), (col_x[1] - 6, row_y[1] + mid), "move by rho(g)")
    arrow_((col_x[0] + cell // 2, row_y[0] + title_h + cell + 4), (col_x[0] + cell // 2, row_y[1] - 4), "lift L")
    arrow_((col_x[1] + cell + 6, row_y[0] + title_h + cell // 2), (col_x[2] + cell // 2, row_y[1] - 4), "lift L")
    draw.text((col_x[1] + cell + 8, row_y[1] + mid - 8), "vs", fill=TEXT, font=font)
    draw.text((gap, height - 22), f"|L(g x) - rho(g) L(x)| / |L(x)| = {error:.2e}", fill=TEXT, font=font)
    return canvas


# ---- scrub frames (compact PNGs the browser swaps) -----------------------------------------------

def _png_base64(image: Image.Image) -> str:
    import base64
    import io

    buffer = io.BytesIO()
    image.save(buffer, "PNG", optimize=False, compress_level=6)
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def _palette(cmap: str) -> list[int]:
    return (colormaps[cmap](np.linspace(0, 1, 256))[:, :3] * 255).astype(np.uint8).ravel().tolist()


def _to_uint8(values: np.ndarray, vmin: float, vmax: float) -> np.ndarray:
    span = vmax - vmin if vmax > vmin else 1.0
    return np.round(np.clip((np.asarray(values, dtype=np.float32) - vmin) / span, 0, 1) * 255).astype(np.uint8)


def sprite(maps: Sequence[np.ndarray]) -> np.ndarray:
    """Maps ``[h, w]`` side by side into one ``[h, n * w]`` strip (one PNG per frame and panel)."""
    return np.concatenate([np.asarray(m, dtype=np.float32) for m in maps], axis=1)


def encode_map(values: np.ndarray, vmin: float, vmax: float, cmap: str | None = None) -> str:
    """``[h, w]`` values -> base64 PNG at native resolution, 8 bits on ``[vmin, vmax]`` (clipped):
    grey (mode L) or a palette image through ``cmap`` (mode P, 256 colours). The browser scales it."""
    image = Image.fromarray(_to_uint8(values, vmin, vmax), mode="L")
    if cmap is not None:
        image = image.convert("P")
        image.putpalette(_palette(cmap))
    return _png_base64(image)


def encode_rgb(rgb: np.ndarray) -> str:
    return _png_base64(Image.fromarray(np.asarray(rgb, dtype=np.uint8)))


def css_stops(cmap: str, n: int = 9) -> list[str]:
    """``n`` CSS colours along ``cmap``, low to high (a colour bar drawn by the browser)."""
    rgb = (colormaps[cmap](np.linspace(0, 1, n))[:, :3] * 255).astype(int)
    return [f"#{r:02x}{g:02x}{b:02x}" for r, g, b in rgb]


# ---- Misclassified and Compare: calibration, normalised confusion, the orbit's change ------------

def normalised_confusion_figure(confusion: np.ndarray, class_names: Sequence[str]) -> go.Figure:
    """Row-normalised confusion heatmap (true class down, predicted across; each row sums to 1, the
    diagonal is each class's recall), the counts in the hover. Clickable like :func:`confusion_figure`:
    a nearly invisible scatter over the cells carries the selection (point_index = row*K+col)."""
    from eqlens.evaluation.metrics import normalised_confusion

    counts = np.asarray(confusion)
    shares = normalised_confusion(counts)
    k, names = len(class_names), list(class_names)
    totals = counts.sum(axis=1)
    heat = dict(type="heatmap", z=np.nan_to_num(shares).tolist(), x=names, y=names, colorscale="Viridis",
                zmin=0, zmax=1, colorbar=dict(title=dict(text="share of<br>true class")),
                text=[[f"{v:.2f}" if np.isfinite(v) else "-" for v in row] for row in shares],
                texttemplate="%{text}", hoverinfo="skip")
    hover = [f"true {names[r]}, predicted {names[c]}<br>{int(counts[r, c])} of {int(totals[r])} images "
             f"({shares[r, c]:.1%})" for r in range(k) for c in range(k)]
    cells = dict(type="scatter", x=[names[c] for r in range(k) for c in range(k)],
                 y=[names[r] for r in range(k) for c in range(k)], mode="markers", text=hover,
                 marker=dict(size=60, opacity=0.01, symbol="square"), hovertemplate="%{text}<extra></extra>",
                 showlegend=False)
    return _figure([heat, cells], "Confusion, rows normalised (click a cell)", height=380,
                   clickmode="event+select", xaxis=dict(title=dict(text="predicted")),
                   yaxis=dict(title=dict(text="true"), autorange="reversed"))


def reliability_figure(calibration: dict) -> go.Figure:
    """Reliability diagram of :func:`eqlens.evaluation.metrics.reliability`: accuracy per confidence bin
    (bars, image counts on them) against the diagonal of a calibrated model, the mean confidence of
    each bin as a point; the expected calibration error in the title."""
    edges = np.asarray(calibration["edges"], dtype=np.float64)
    centres, widths = (edges[1:] + edges[:-1]) / 2, np.diff(edges)
    accuracy = np.asarray(calibration["accuracy"], dtype=np.float64)
    confidence = np.asarray(calibration["confidence"], dtype=np.float64)
    counts = list(calibration["count"])
    filled = np.isfinite(accuracy)
    bars = dict(type="bar", x=centres[filled].tolist(), y=accuracy[filled].tolist(),
                width=(widths[filled] * 0.95).tolist(),
                name="accuracy in the bin", marker=dict(color=PALETTE[1]),
                text=[f"{counts[i]}" for i in np.flatnonzero(filled)], textposition="inside",
                customdata=[[edges[i], edges[i + 1], counts[i]] for i in np.flatnonzero(filled)],
                hovertemplate="confidence %{customdata[0]:.1f}-%{customdata[1]:.1f}: accuracy %{y:.3f} "
                              "(%{customdata[2]} images)<extra></extra>")
    points = dict(type="scatter", x=confidence[filled].tolist(), y=accuracy[filled].tolist(), mode="markers",
                  name="mean confidence of the bin", marker=dict(color=PALETTE[0], size=8),
                  hovertemplate="mean confidence %{x:.3f}, accuracy %{y:.3f}<extra></extra>")
    diagonal = dict(type="scatter", x=[0, 1], y=[0, 1], mode="lines", name="calibrated",
                    line=dict(color="gray", dash="dot"))
    title = f"Calibration: expected calibration error {calibration['ece']:.3f} ({len(counts)} bins)"
    return _figure([bars, points, diagonal], title, height=380, bargap=0,
                   xaxis=dict(title=dict(text="confidence (top-class probability)"), range=[0, 1]),
                   yaxis=dict(title=dict(text="accuracy"), range=[0, 1.02]))


ORBIT_CHANGE_FLOOR = 1e-8  # float32 rounding sits near 1e-7: a log axis needs a floor for exact zeros


def orbit_change(result) -> np.ndarray:
    """``[A]`` largest change of any class probability from the upright one (angle 0) over an orbit."""
    p = np.asarray(result.probabilities, dtype=np.float64)
    return np.maximum(np.abs(p - p[0]).max(axis=1), ORBIT_CHANGE_FLOOR)


def orbit_change_figure(curves: dict, exact_angles: Sequence[float], current_angle: float,
                        title: str = "How far each model moves from its upright prediction") -> go.Figure:
    """``curves``: label -> OrbitResult. Per model, ``max_k |p_k(angle) - p_k(0)|`` on a log axis (solid
    first, dashed second), with the group's exact angles marked on each curve: an invariant model drops
    to float rounding (~1e-7) there, a plain one does not."""
    data, dashes = [], ("solid", "dash", "dot")
    for m, (label, res) in enumerate(curves.items()):
        change = orbit_change(res)
        angles = np.asarray(res.angles, dtype=np.float64)
        colour = PALETTE[(m * 2 + 1) % len(PALETTE)]
        data.append(dict(type="scatter", x=np.append(angles, 360.0).tolist(), y=np.append(change, change[0]).tolist(),
                         mode="lines", name=label, line=dict(color=colour, dash=dashes[m % 3], width=2)))
        rows = [i for i, a in enumerate(angles) if a % 360 and any(abs(a - e) < 1e-9 for e in exact_angles)]
        if rows:
            data.append(dict(type="scatter", x=angles[rows].tolist(), y=change[rows].tolist(), mode="markers",
                             name=f"{label}: exact angles", marker=dict(color=colour, size=10, symbol="diamond"),
                             hovertemplate="%{x:g} deg (exact): %{y:.1e}<extra></extra>"))
    shapes = [_vline(a, "rgba(255,255,255,0.25)", dash="dot") for a in exact_angles]
    shapes.append(_vline(current_angle, "white", 1.5))
    return _figure(data, title, height=340, shapes=shapes,
                   xaxis=dict(title=dict(text="rotation angle (deg)"), range=[0, 360], dtick=45),
                   yaxis=dict(title=dict(text="max |p(angle) - p(0)|"), type="log", dtick=1,
                              exponentformat="power", range=[math.log10(ORBIT_CHANGE_FLOOR), 0.1]))


def _physical_range(b, k: int) -> str:
    """A mass bin's range in physical Msun, for the hover ('' for other features)."""
    edges = b.physical_edges
    return "" if edges is None else f" ({edges[k]:.3g} to {edges[k + 1]:.3g} Msun physical)"


def error_anatomy_figure(bins: Sequence, class_name: str) -> go.Figure:
    """Error rate of the true class ``class_name`` against the quantile bins of each scene feature
    (:func:`eqlens.analysis.error_anatomy.error_anatomy`'s ``ErrorRateBins`` of that class): one line per
    feature, x the bin from the lowest values to the highest (so features in different units share an
    axis), binomial standard errors as bars; hover gives the bin's range in the feature's units and its
    counts. A steep line is a parameter the errors depend on; the dotted line is the class's error rate.
    Each feature keeps its colour (its place in ``SCENE_FEATURES``) in every class's chart."""
    from eqlens.analysis.error_anatomy import SCENE_FEATURES

    order = {feature.name: i for i, feature in enumerate(SCENE_FEATURES)}
    traces, overall, most = [], None, 1
    for b in bins:
        i = order.get(b.feature.name, len(order))
        n = len(b.counts)
        most = max(most, n)
        overall = b.total_rate
        traces.append(dict(
            type="scatter", mode="lines+markers", x=list(range(1, n + 1)), y=b.rate.tolist(),
            name=b.feature.label, line=dict(color=DISTINCT_PALETTE[i % len(DISTINCT_PALETTE)]),
            error_y=dict(type="data", array=b.stderr.tolist(), visible=True, thickness=1),
            customdata=[[b.edges[k], b.edges[k + 1], int(b.counts[k]), int(b.errors[k]), b.feature.unit,
                         _physical_range(b, k)] for k in range(n)],
            hovertemplate=(f"{b.feature.label}: %{{customdata[0]:.3g}} to %{{customdata[1]:.3g}} "
                           "%{customdata[4]}%{customdata[5]}<br>%{customdata[3]} of %{customdata[2]} lenses wrong "
                           "(%{y:.3f})<extra></extra>")))
    if overall is not None:
        traces.append(dict(type="scatter", mode="lines", x=[0.8, most + 0.2], y=[overall, overall],
                           name=f"all {class_name} lenses", line=dict(color="gray", dash="dot"),
                           hovertemplate=f"error rate of all {class_name} lenses: {overall:.3f}<extra></extra>"))
    return _figure(traces, f"True {class_name}: error rate by quantile of each scene parameter", height=420,
                   xaxis=dict(title=dict(text="quantile bin of the parameter (lowest to highest)"),
                              tickmode="array", tickvals=list(range(1, most + 1)),
                              ticktext=[f"{k}/{most}" for k in range(1, most + 1)]),
                   yaxis=dict(title=dict(text="error rate"), rangemode="tozero"),
                   legend=dict(orientation="h", y=-0.3))
