"""Explore: one model, one lens, the rotation orbit scrubbed in the browser, a precise angle on the server.

The scrubber (app/components/scrub) gets every frame of the orbit of the chosen (model, lens,
view) at once, computed here in batches coarse to fine and cached; its slider and Play button
swap frames in the browser, with no server round trip. Below it, the precise angle: a slider in
one fragment, so a move reruns only that (one inspected forward plus composed PNGs).
"""

from __future__ import annotations

import json
import time
import uuid

import numpy as np
import streamlit as st
import torch
from PIL import Image

from app import card_panel, compute, figures, lenses, markup, regression, settings, state, widgets
from app import scene_panel as scene_panel_tables
from app.catalog import LoadedModel
from app.components.scrub import scrub
from eqlens.analysis import activations
from eqlens.analysis import attention as attention_lib
from eqlens.analysis import attribution as attribution_lib
from eqlens.data.transforms import InputSpec
from eqlens.groups import DEFAULT_GROUP, get_group
from eqlens.models import averaged_turns
from eqlens.simulation import scene

ANGLE = "explore_angle"
VIEWS = compute.SCRUB_VIEWS
SCRUB_NONCE = "explore_scrub_nonce"
SCRUB_WORKER = "explore_scrub_worker"  # this session's token: an orbit it did not fill is shown as cached
PIN = "explore_pinned_lens"
SKY_KEY, SKY_FOLLOWED = "explore_sky", "explore_sky_followed"
STRETCH = "explore_stretch"


def _set_angle(value: float) -> None:
    st.session_state[ANGLE] = float(value)


def angle_controls(loaded: LoadedModel) -> float:
    """The precise angle: a slider (computed on the server) and one button per rotation of the model's group."""
    group = loaded.group
    st.session_state.setdefault(ANGLE, 0.0)
    angle = st.slider("Rotation (deg, counter-clockwise), computed precisely on the server", 0.0, 359.0, step=1.0,
                      key=ANGLE, format="%.0f°")
    # A plain model has no group of its own: offer the pixel-exact 90-deg turns.
    reference = group if group.order_rotations >= 4 else get_group(DEFAULT_GROUP)
    exact = [g for g in reference.elements if not g.flip]
    cols = st.columns([1.4] + [1] * len(exact) + [max(1, 12 - len(exact))])
    cols[0].caption(f"{reference.name} angles")
    for col, g in zip(cols[1:], exact, strict=False):
        col.button(f"{g.angle_deg:g}°", key=f"explore_angle_btn_{g.rot}", on_click=_set_angle, args=(g.angle_deg,),
                   width="stretch")
    return float(angle)


# Every plotly figure keeps its mode bar's camera button: "Download plot as a png" (twice the size).
PLOT_CONFIG = {"displaylogo": False, "toImageButtonOptions": {"format": "png", "scale": 2}}


def _turned_picture(image: np.ndarray, angle: float, flip: bool) -> np.ndarray:
    """The raw picture mirrored (if asked) and turned counter-clockwise on the screen by ``angle``
    (bilinear; the corners that come in hold the image's minimum): what the turned lens looks like."""
    img = np.asarray(image, dtype=np.float32)
    if flip:
        img = img[:, ::-1]
    if angle % 360 == 0:
        return np.ascontiguousarray(img)
    turned = Image.fromarray(np.ascontiguousarray(img), mode="F").rotate(angle, resample=Image.BILINEAR,
                                                                         fillcolor=float(img.min()))
    return np.asarray(turned)


def input_pixel_scale(loaded: LoadedModel, lens: lenses.LensImage) -> float | None:
    """Arcsec per model-input pixel (the card's crop and size over the lens's own scale), None when
    the lens's own scale is unknown (uploads, folders)."""
    native = lens.pixel_scale
    if native is None:
        return None
    return InputSpec(image_size=loaded.image_size, crop=loaded.crop).pixel_scale(lens.image.shape[-1], native)


def lens_panel(loaded: LoadedModel, lens: lenses.LensImage, x_rot: torch.Tensor, angle: float, flip: bool,
               show_truth: bool, sky: bool = False, how: str = "log") -> None:
    shown = lens
    if sky:  # the scene turned and rendered again: its own pixels, noise and (turned) truth
        shown = lenses.turned_scene(lens, -angle if flip else angle)
        picture, truth_angle = _turned_picture(shown.image, 0.0, flip), 0.0
    else:
        picture, truth_angle = _turned_picture(lens.image, angle, flip), angle
    title = ("the sky turned, rendered again" if sky else "the lens, turned") + (" after a mirror" if flip else "")
    st.plotly_chart(figures.lens_figure(picture, title, lens.pixel_scale, shown.truth if show_truth else None,
                                        truth_angle, flip, how=how, colorbar_label=f"{how} stretch"),
                    key="explore_lens_fig", width="stretch", theme=None, config=PLOT_CONFIG)
    st.caption(markup.text(shown.source) + (f" (true: {markup.text(lens.label)})" if lens.label else ""))
    in_scale = input_pixel_scale(loaded, lens)
    crop = f"{loaded.crop}-px crop" if loaded.crop else "whole frame"
    title = f"model input: {crop} at {loaded.image_size} px" + (f", {in_scale:.3g}\"/px" if in_scale else "")
    st.plotly_chart(figures.lens_figure(x_rot[0, 0].numpy(), title, in_scale, how="linear",
                                        colorbar_label="normalised", height=300),
                    key="explore_input_fig", width="stretch", theme=None, config=PLOT_CONFIG)


def scene_panel(lens: lenses.LensImage) -> None:
    """The simulated scene's parameters (the simulator's truth) and its subhalos, with a download."""
    params = scene.scene_parameters(lens.truth)
    subhalos = scene.subhalo_rows(lens.truth)
    with st.expander(f"the scene of {lens.source} (simulator truth)", expanded=True):
        scene_panel_tables.scene_tables(lens.truth)
        record = {"source": lens.source, "parameters": params, "subhalos": subhalos, "mass_unit": scene.MASS_UNIT,
                  "mass_unit_note": scene.mass_note(lens.truth), "truth": lens.truth}
        st.download_button("scene (JSON)", json.dumps(record, indent=1, default=_jsonable), file_name="scene.json",
                           mime="application/json", on_click="ignore", key="explore_scene_json")


def _jsonable(value):
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, (np.floating, np.integer)):
        return value.item()
    return str(value)


def prediction_panel(loaded: LoadedModel, logits: torch.Tensor) -> np.ndarray:
    probs = torch.softmax(logits[0].float(), dim=-1).numpy()
    st.plotly_chart(figures.probability_bar(loaded.class_names, probs, logits[0].numpy()), key="explore_probs",
                    width="stretch", theme=None, config=PLOT_CONFIG)
    top = int(np.argmax(probs))
    with st.container(key="explore_prediction"):
        st.markdown(f"**prediction:** {markup.code(loaded.class_names[top])} &nbsp; p = `{probs[top]:.4f}`")
        # an orbit-averaged model outputs log mean softmax over its turns: log-probabilities, not logits
        output = "log-probabilities (orbit average)" if averaged_turns(loaded.model.build_config or {}) else "logits"
        st.caption(f"{output}: " + ", ".join(f"{markup.text(n)} {z:+.4f}"
                                             for n, z in zip(loaded.class_names, logits[0].tolist(), strict=True)))
    return probs


def regression_panel(loaded: LoadedModel, logits: torch.Tensor, truth: float | None) -> None:
    """The predicted physical value now (a regression checkpoint: one output, decoded by the card's
    scaler) beside the simulator's truth of the lens when it carries the target."""
    task = loaded.regression
    value = float(task.values(logits)[0])
    with st.container(key="explore_prediction"):
        st.metric(markup.text(f"predicted {task.name} ({task.unit})"), f"{value:.6f}",
                  delta=None if truth is None else f"{value - truth:+.4f} vs truth", delta_color="off")
        if truth is None:
            st.caption(f"no true {markup.text(task.name)} for this lens (only simulated lenses of its class carry one)")
        else:
            st.metric(markup.text(f"true {task.name} ({task.unit})"), f"{truth:.6f}")
        st.caption(f"regression checkpoint ({task.task}): raw output {float(logits.reshape(-1)[0]):+.4f}, "
                   f"decoded as {task.scaler.mean:.4g} + {task.scaler.std:.4g} x output")


RESAMPLING_NOTE = ("Between the 90-deg multiples the picture is resampled (bilinear, which also smooths its pixel "
                   "noise); at them its pixels are only permuted, with no interpolation. So an invariant model's "
                   "curves can spike at the exact angles: that is the resampling, not the model (\"turn the sky\" "
                   "renders each angle instead).")


TRUTH_LEGEND = ("The truth on the lens: orange circle, the Einstein ring; cyan circles, subhalos (larger for a "
                "larger log mass); pink line, the axion vortex.")


def orbit_csv(result, class_names) -> str:
    """The orbit's numbers: one row per angle, each class's probability and logit."""
    head = ["angle_deg"] + [f"p_{n}" for n in class_names] + [f"logit_{n}" for n in class_names]
    rows = [",".join(head)]
    for a, p, z in zip(result.angles, result.probabilities, result.logits, strict=True):
        rows.append(",".join([f"{float(a):g}"] + [f"{float(v):.8g}" for v in list(p) + list(z)]))
    return "\n".join(rows) + "\n"


SKY_NOTE = ("turned sky: every angle is a new rendering with the instrument's own noise, so even an exactly "
            "invariant model moves a little; what is left is how the model reads the lens at that orientation")


def regression_orbit_panel(loaded: LoadedModel, result, angle: float, truth: float | None, sky: bool = False) -> None:
    task = loaded.regression
    values = task.values(result.logits)
    exact = [g.angle_deg for g in loaded.group.elements if not g.flip]
    st.plotly_chart(figures.regression_orbit_figure(result.angles, values, task.name, task.unit, angle, exact, truth),
                    key="explore_orbit", width="stretch", theme=None, config=PLOT_CONFIG)
    change = None if sky else regression.exact_change(result.angles, values)
    st.caption(f"over the orbit: {values.min():.4f} to {values.max():.4f} {markup.text(task.unit)}"
               + ("" if change is None else f"; largest change at the exact 90-deg angles {change:.2e}")
               + (f". {SKY_NOTE}" if sky else ""))


def orbit_panel(loaded: LoadedModel, result, angle: float, sky: bool = False) -> None:
    quantity = st.radio("Orbit of", ["probabilities", "logits"], horizontal=True, key="explore_orbit_quantity")
    exact = [g.angle_deg for g in loaded.group.elements if not g.flip]
    st.plotly_chart(figures.orbit_figure({loaded.label: result}, loaded.class_names, angle, exact, quantity),
                    key="explore_orbit", width="stretch", theme=None, config=PLOT_CONFIG)
    st.download_button("orbit numbers (CSV)", orbit_csv(result, loaded.class_names), file_name="orbit.csv",
                       mime="text/csv", on_click="ignore", key="explore_orbit_csv")
    if not sky:
        st.caption(RESAMPLING_NOTE)
    if sky:
        consistent = float((result.probabilities.argmax(-1) == result.probabilities[0].argmax()).mean())
        st.caption(f"{SKY_NOTE}. Same class as at 0 deg at {consistent:.0%} of the angles.")
        return
    try:
        st.caption(f"invariance error at the exact 90-deg angles: {result.exact_spread('C4'):.2e} (relative, logits)")
    except ValueError:
        pass


def _keep_valid(key: str, options) -> list:
    """A choice kept from another model that this one does not offer is dropped (back to the default)."""
    options = list(options)
    if key in st.session_state and st.session_state[key] not in options:
        del st.session_state[key]
    return options


def view_controls(loaded: LoadedModel, upright) -> compute.ScrubView:
    """The view and its settings (above the scrubber: the orbit's frames depend on them). The view
    offered first is one this model has: attention, else group channels, else attributions."""
    views = compute.available_views(loaded)
    if st.session_state.get("explore_view") not in views:
        st.session_state["explore_view"] = views[0]
    view = st.radio("View", views, horizontal=True, key="explore_view", label_visibility="collapsed")
    size = loaded.image_size
    if view == "Attention":
        c1, c2, c3 = st.columns(3)
        row = c1.slider("query row", 0, size - 1, size // 2, key="explore_query_row")
        col = c2.slider("query column", 0, size - 1, min(size - 1, size // 2 + size // 5), key="explore_query_col")
        block = c3.selectbox("block", _keep_valid("explore_block", loaded.model.attention_modules()),
                             key="explore_block")
        return compute.ScrubView(view, block=block, row=int(row), col=int(col))
    if view == "Group channels":
        c1, c2 = st.columns(2)
        tap = c1.selectbox("layer", _keep_valid("explore_gc_layer", upright.group_channels), key="explore_gc_layer")
        fields = upright.group_channels[tap].shape[1]
        if st.session_state.get("explore_gc_field", 0) > fields - 1:
            st.session_state["explore_gc_field"] = 0
        field = c2.number_input("field", 0, fields - 1, 0, key="explore_gc_field")
        return compute.ScrubView(view, tap=tap, field=int(field))
    methods = list(attribution_lib.METHODS)
    c1, c2, c3 = st.columns(3)
    method = c1.selectbox("method", methods, index=methods.index("gradcam"),
                          format_func=lambda m: method_label(loaded, m),
                          key="explore_attr_method", help="the time is the whole orbit's, before it runs: measured "
                          "on this server for this model when it ran here before, else estimated from its forward")
    predicted = int(upright.logits[0].argmax()) if loaded.regression is None else 0
    classes = _keep_valid("explore_attr_target", range(len(loaded.class_names)))
    target = c2.selectbox("class", classes, index=min(predicted, len(classes) - 1),
                          format_func=lambda i: loaded.class_names[i], key="explore_attr_target")
    layer = None
    if method == "gradcam":
        spatial = [n for n, t in loaded.model.taps().items() if t.kind != "features"]
        _keep_valid("explore_attr_layer", spatial)
        layer = c3.selectbox("layer", spatial, index=len(spatial) - 1, key="explore_attr_layer") if spatial else None
    return compute.ScrubView(view, method=method, target=int(target), layer=layer)


def method_label(loaded: LoadedModel, method: str) -> str:
    """An attribution method's name and its orbit's cost before it runs ("Integrated Gradients, about 6 s")."""
    seconds, _ = compute.estimate_seconds(loaded, compute.ScrubView("Attributions", method=method), loaded.image_size)
    return f"{attribution_lib.METHODS[method]}, {compute.about(seconds)}"


def attention_tab(insp, x_rot: torch.Tensor, spec: compute.ScrubView) -> None:
    if not insp.attention:
        st.info("This model has no attention blocks.")
        return
    size = x_rot.shape[-1]
    row, col, block = spec.row, spec.col, spec.block
    att = insp.attention[block]
    base = x_rot[0, 0].numpy()
    heads = att.weights.shape[1]
    panels = [("mean of heads", attention_lib.query_map(att, (row, col), (size, size))[0])]
    panels += [(f"head {h}", attention_lib.query_map(att, (row, col), (size, size), head=h)[0]) for h in range(heads)]
    panels.append(("rollout (all blocks)", attention_lib.rollout_map(list(insp.attention.values()), (row, col),
                                                                     (size, size))[0]))
    rgb = [(t, figures.mark_point(figures.overlay(base, m.numpy(), cmap="viridis"), row, col)) for t, m in panels]
    picture = figures.image_grid(rgb, cmap="viridis", cell=150, columns=min(len(rgb), 5),
                                 colorbar_label="weight/max", overlay_range=(0.0, 1.0))
    st.image(picture, caption=f"{block}: query grid {att.query_grid}, key grid {att.key_grid}; the cross marks the "
                              "query")
    widgets.export_buttons("explore_att", picture, {"block": block, "query_row_col": [row, col],
                                                    **{t: m.numpy() for t, m in panels}})


def on_group_angle(group, angle: float) -> bool:
    """Whether ``angle`` (deg) is a rotation of ``group`` (a multiple of 360/N)."""
    step = 360.0 / group.order_rotations
    return abs(angle / step - round(angle / step)) < 1e-9


def group_channels_tab(loaded: LoadedModel, insp, angle: float, flip: bool, upright_insp,
                       spec: compute.ScrubView) -> None:
    if not insp.group_channels:
        st.info("This model keeps no group channels (no regular feature field to show).")
        return
    tap, field = spec.tap, spec.field
    features = insp.group_channels[tap]
    labels = [figures.element_label(g) for g in loaded.group.elements]
    maps = [m[0].numpy() for _, m in activations.channel_orbit(features, int(field), loaded.group)]
    now = figures.image_grid(list(zip(labels, maps, strict=True)), cmap="magma", cell=110,
                             colorbar_label="activation")
    st.image(now, caption="the |G| orientation channels now: turning the input moves each map and cycles them")
    try:
        steady = activations.stabilise(features, loaded.group, angle, flip)
    except ValueError as err:
        st.info(markup.text(err))
        return
    still = [m[0].numpy() for _, m in activations.channel_orbit(steady, int(field), loaded.group)]
    picture = figures.image_grid(list(zip(labels, still, strict=True)), cmap="magma", cell=110,
                                 colorbar_label="activation")
    st.image(picture, caption="stabilised: rotated back into the input's frame (stays still for an equivariant "
                              "layer at the group's angles)")
    if not on_group_angle(loaded.group, angle):
        st.caption(f"{angle:g} deg is not a rotation of {loaded.group.name}: the input was resampled between the "
                   "group's angles, where the layer is not built to commute with the turn, so the stabilised view "
                   "is not expected to stand still here (it does at multiples of "
                   f"{360 / loaded.group.order_rotations:g} deg).")
    reference = upright_insp.group_channels[tap]
    err = float((steady - reference).norm() / reference.norm().clamp_min(1e-12))
    st.metric("|stabilised - upright| / |upright|", f"{err:.2e}")
    widgets.export_buttons("explore_gc", picture, {"angle_deg": angle, "layer": tap, "field": int(field),
                                                   "elements": labels, "channels": maps, "stabilised": still,
                                                   "stabilised_distance": err})


ATTRIBUTION_HELP = ("0 (float noise, ~1e-6) for an invariant model at the pixel-exact angles (90-deg multiples); "
                     "elsewhere compared inside the inscribed disk only, and the resampling of the picture leaves "
                     "a residue. Saliency and Grad-CAM share the gradient of tied max-pool windows (flat patches) "
                     "equally, so it turns with the image; with the circular mask the attribution is taken "
                     "through the mask, so the pixels the model never sees get none.")


def attribution_tab(loaded: LoadedModel, lens, x_rot, x_up, angle: float, flip: bool, spec: compute.ScrubView,
                    mask: bool = True) -> None:
    method, target, layer = spec.method, spec.target, spec.layer
    back = st.toggle("rotate back into the upright frame", value=True, key="explore_attr_back")
    try:
        attr = compute.attribution_at(loaded, lens.digest, x_rot, angle, method, int(target), layer, flip, mask)
        maps = {"signed": attr}
        if back:
            upright = compute.attribution_at(loaded, lens.digest, x_up, 0.0, method, int(target), layer, mask=mask)
            turned_back = attribution_lib.rotate_back(attr[None], angle, flip)[0]
            exact = angle % 90 == 0
            err = attribution_lib.attribution_invariance_error(upright[None], turned_back[None], exact=exact)
            maps.update({"rotated back": turned_back, "upright": upright})
    except (ValueError, RuntimeError) as exc:
        st.warning(f"{attribution_lib.METHODS[method]} is not available for this model: {markup.text(exc)}")
        return
    limit = attribution_lib.display_limit(*maps.values())
    pct = f"{attribution_lib.DISPLAY_PERCENTILE:g}th"
    clipped = attribution_lib.clipped_share(torch.stack(list(maps.values())), limit)
    panels = [("attribution over the input", figures.overlay(x_rot[0, 0].numpy(), attr.numpy(), "RdBu_r",
                                                             symmetric=True, limit=limit))]
    panels += [(name, m.numpy()) for name, m in maps.items()]
    picture = figures.image_grid(panels, cmap="RdBu_r", cell=150, value_range=(-limit, limit),
                                 colorbar_label=f"attribution, clipped at the {pct} percentile of |A|")
    st.image(picture, caption=f"{attribution_lib.METHODS[method]} of {loaded.class_names[int(target)]}; one colour "
                              f"scale, ±{limit:.3g} (the {pct} percentile of |A|; {clipped:.1%} of the pixels "
                              "beyond it are shown at its ends)")
    if back:
        st.metric("attribution invariance error |A(x) - R⁻¹A(Rx)| / |A(x)|", f"{err:.3e}", help=ATTRIBUTION_HELP)
    widgets.export_buttons("explore_attr", picture, {"method": method, "class": loaded.class_names[int(target)],
                                                     "angle_deg": angle, "flip": flip, "display_limit": limit,
                                                     **{k: v.numpy() for k, v in maps.items()},
                                                     **({"invariance_error": err} if back else {})})


# ---- the scrubber ------------------------------------------------------------------------------

@st.cache_data(max_entries=32, show_spinner=False)
def _lens_png(_lens: lenses.LensImage, digest: str, show_truth: bool, flip: bool, how: str = "log") -> str:
    """The upright lens picture the scrubber turns itself (with the truth overlay), as a PNG (once per lens)."""
    picture = figures.lens_with_truth(_lens.image, _lens.truth if show_truth else None, size=240, how=how)
    if flip:
        picture = picture.transpose(Image.FLIP_LEFT_RIGHT)
    return figures.encode_rgb(np.asarray(picture))


def scrub_layout(loaded: LoadedModel, lens: lenses.LensImage, orbit: compute.ScrubOrbit, show_truth: bool,
                 flip: bool, sky: bool) -> dict:
    """What the scrubber draws around the frames: titles, cell sizes, colour scales (fixed by the
    first batch), the upright lens picture it turns itself (none for a turned sky)."""
    spec, size = orbit.view, loaded.image_size
    lo, hi = orbit.scale or (0.0, 1.0)
    cell_h, cell_w = orbit.cell or (size, size)
    if spec.kind == "Group channels":
        cells = [figures.element_label(g) for g in loaded.group.elements]
        px = 96 if len(cells) <= 8 else 64
        common = dict(cells=cells, w=cell_w, h=cell_h, px=px, stops=figures.css_stops("magma"), vmin=lo, vmax=hi,
                      label="activation", base=False, alpha=1.0, smooth=False, mark=None)
        panels = [dict(name="channels", title=f"the |G| orientation channels of field {spec.field} of {spec.tap}: "
                                              "turning the input moves each map and cycles them", **common),
                  dict(name="stabilised", title="stabilised: rotated back into the input's frame (stays still for "
                                                f"an equivariant layer at the {loaded.group.name} angles, multiples of "
                                                f"{360 / loaded.group.order_rotations:g} deg; between them the "
                                                "resampled input is not expected to)", **common)]
        metric = f"|stabilised - upright| / |upright| (field {spec.field})"
    elif spec.kind == "Attention":
        heads = orbit.heads or 0
        cells = ["mean of heads"] + [f"head {h}" for h in range(heads)] + ["rollout (all blocks)"]
        panels = [dict(name="maps", title=f"{spec.block}: where the query (the cross) looks, over the model input",
                       cells=cells, w=size, h=size, px=120, stops=figures.css_stops("viridis"), vmin=0.0, vmax=1.0,
                       label="weight/max", base=True, alpha=0.6, smooth=True, mark=[spec.row, spec.col])]
        metric = ""
    else:
        name = attribution_lib.METHODS[spec.method]
        detail = orbit.detail()
        panels = [dict(name="maps", title=f"{name} of {loaded.class_names[spec.target]}{detail}; colour scale "
                                          f"clipped at the {attribution_lib.DISPLAY_PERCENTILE:g}th percentile of |A|",
                       cells=["attribution (turned input)", "rotated back (upright frame)"], w=size, h=size, px=150,
                       stops=figures.css_stops("RdBu_r"), vmin=lo, vmax=hi, label="attribution", base=False,
                       alpha=1.0, smooth=False, mark=None)]
        metric = "attribution invariance error |A(x) - R⁻¹A(Rx)| / |A(x)|"
    how = st.session_state.get(STRETCH, "log")
    lens_image = None if sky else _lens_png(lens, lens.digest, show_truth, flip, how)
    task = loaded.regression
    return dict(
        view=spec.kind, size=size, lens_px=220, input_px=150, plot_w=320, plot_h=190, group=loaded.group.name,
        lens_title=("the sky turned and rendered again" if sky else "the lens, turned") + (" after a mirror" if flip
                                                                                          else ""),
        lens_image=lens_image, classes=list(loaded.class_names),
        colors=list(figures.PALETTE[: max(1, len(loaded.class_names))]),
        regression=None if task is None else dict(name=task.name, unit=task.unit),
        panels=panels, metric_label=metric,
        note=(f"Frames every {360 / settings.ORBIT_STEPS:g} deg plus the {loaded.group.name} angles; "
              "between them the nearest frame is shown (its angle above). \"precise angle\" computes the "
              "slider's angle on the server, below." + ("" if sky else " " + RESAMPLING_NOTE)
              + (" " + TRUTH_LEGEND if show_truth and lens.truth else "")),
    )


def scrub_payload(loaded: LoadedModel, lens, orbit: compute.ScrubOrbit, show_truth: bool, flip: bool, sky: bool,
                  start: float) -> dict:
    payload = orbit.payload()
    if loaded.regression is not None:
        payload["values"] = [None if f is None else float(loaded.regression.values(np.array([f["logits"][:1]]))[0])
                             for f in orbit.frames]
    payload["layout"] = scrub_layout(loaded, lens, orbit, show_truth, flip, sky)
    payload["start"] = float(start)
    return payload


# Model work per run while the orbit fills: the first frames show within about FIRST_FILL_SECONDS;
# later runs take longer slices (each run costs a rerun and a payload sent to the browser).
FIRST_FILL_SECONDS, FILL_SECONDS = 0.25, 1.0


def scrub_section(loaded: LoadedModel, lens: lenses.LensImage, spec: compute.ScrubView, show_truth: bool, mask: bool,
                  flip: bool, sky: bool) -> None:
    """The orbit of this (model, lens, view), filled coarse to fine while the browser already shows
    the first frames; cached, so a later run (or another session) only hands it over.

    While frames are missing the section is a fragment that reruns itself (``run_every``), one
    slice of batches per run, and the scrubber (a stable key: the same iframe) gets the frames so
    far; the run that completes the orbit reruns the page once, which stops the polling."""
    turned = lenses.sky_turner(lens, loaded.image_size, loaded.crop) if sky else None
    x = lenses.prepared(lens, loaded.image_size, loaded.crop)
    orbit = compute.scrub_orbit(loaded, x, spec, lens.digest, flip, mask, turned,
                                scene_key=(lens.scene, loaded.image_size, loaded.crop))
    polling = not orbit.complete
    st.fragment(_scrub_body, run_every=0.05 if polling else None)(loaded, lens, orbit, show_truth, flip, sky, polling)


def _scrub_body(loaded: LoadedModel, lens: lenses.LensImage, orbit: compute.ScrubOrbit, show_truth: bool, flip: bool,
                sky: bool, polling: bool) -> None:
    status = st.empty()
    me = st.session_state.setdefault(SCRUB_WORKER, uuid.uuid4().hex)
    cost = ""
    if not orbit.complete:  # the cost before the view runs (and while it fills)
        seconds, how = compute.estimate_seconds(loaded, orbit.view, loaded.image_size)
        cost = f"{compute.about(seconds)} in all, {how} for this model"
        status.caption(f"{orbit.view.kind} over the orbit: {cost}")
    began, budget = time.perf_counter(), FILL_SECONDS if orbit.done else FIRST_FILL_SECONDS
    while not orbit.complete and time.perf_counter() - began < budget:
        orbit.step(me)
    payload = scrub_payload(loaded, lens, orbit, show_truth, flip, sky, float(st.session_state.get(ANGLE, 0.0)))
    value = scrub(payload, key="explore_scrub")
    if orbit.complete:
        status.caption(orbit.summary(me, len(json.dumps(payload)) / 1e6))
    elif orbit.refining:
        status.progress(1.0, text=f"every frame is there; refining Integrated Gradients ({orbit.seconds:.1f} s so far)")
    else:
        status.progress(orbit.progress, text=f"computing the orbit's frames: {orbit.progress:.0%}, {cost} "
                                             "(the scrubber already shows those computed)")
    if value and value.get("nonce") != st.session_state.get(SCRUB_NONCE):
        st.session_state[SCRUB_NONCE] = value.get("nonce")
        st.session_state[ANGLE] = float(round(float(value.get("angle", 0.0))) % 360)
        st.rerun()  # the precise angle (another fragment) takes it
    if polling and orbit.complete:
        st.rerun()  # once, to define the section again without polling


@st.fragment
def live(loaded: LoadedModel, lens: lenses.LensImage, show_truth: bool, mask: bool, spec: compute.ScrubView,
         flip: bool, sky: bool = False, how: str = "log") -> None:
    st.subheader("Precise angle")
    angle = angle_controls(loaded)
    view = spec.kind
    turned = lenses.sky_turner(lens, loaded.image_size, loaded.crop) if sky else None
    now = compute.move(loaded, lenses.prepared(lens, loaded.image_size, loaded.crop), angle, flip, mask, lens.digest,
                       attention=view == "Attention", upright=view == "Group channels", turned=turned,
                       scene_key=(lens.scene, loaded.image_size, loaded.crop))
    x_rot, insp = now.x_rot, now.inspection
    left, middle, right = st.columns([1.25, 1, 1.5])
    with left:
        lens_panel(loaded, lens, x_rot, angle, flip, show_truth, sky, how)
    if loaded.regression is None:
        with middle:
            prediction_panel(loaded, insp.logits)
        with right:
            orbit_panel(loaded, now.orbit, angle, sky)
    else:
        truth = loaded.regression.true_value(lens.truth)
        with middle:
            regression_panel(loaded, insp.logits, truth)
        with right:
            regression_orbit_panel(loaded, now.orbit, angle, truth, sky)
    if lens.truth:
        scene_panel(lens)
    if view == "Attention":
        attention_tab(insp, x_rot, spec)
    elif view == "Group channels":
        group_channels_tab(loaded, insp, angle, flip, now.upright, spec)
    else:
        attribution_tab(loaded, lens, x_rot, now.x_up, angle, flip, spec, mask)


def upright_inspection(loaded: LoadedModel, lens: lenses.LensImage, mask: bool):
    """The upright input's inspection (cached with the one compute.move keeps): which layers, fields
    and class the view controls offer."""
    x_up = compute.input_at(lenses.prepared(lens, loaded.image_size, loaded.crop), 0.0, mask=mask)
    key = ("upright", lens.digest, mask, tuple(x_up.shape))
    return compute._cached(loaded, key, lambda: compute.inspect_at(loaded, x_up, attention=False))


def chosen_lens(loaded) -> lenses.LensImage | None:
    """The lens another page sent (pinned until dismissed), else the sidebar's choice."""
    if PIN in st.session_state:
        lens = st.session_state[PIN]
        truth = f" (true class: {markup.text(lens.label)})" if lens.label else ""
        st.info(f"Showing {markup.text(lens.source)}{truth}")
        if st.button("Choose another image", key="explore_unpin"):
            del st.session_state[PIN]
            st.rerun()
        return lens
    return widgets.lens_selector("explore", follow=loaded)


def follow_model(loaded) -> None:
    """Whenever the model changes, the sky toggle moves to the view it was trained for (a model that learnt
    rotations from turned renderings sees the turned sky first); it stays the user's choice until then."""
    key = loaded.key if loaded is not None else None
    if st.session_state.get(SKY_FOLLOWED) != key:
        st.session_state[SKY_FOLLOWED] = key
        st.session_state[SKY_KEY] = card_panel.learnt_from_renderings(loaded)


def arrive() -> None:
    """Apply a request from another page (e.g. a misclassified lens) before any widget exists."""
    request = state.take_explore_request()
    if request:
        st.session_state["explore_model"] = request["model_key"]
        st.session_state[PIN] = request["lens"]
        st.session_state[ANGLE] = request["angle"]


arrive()
st.title("Explore")
with st.sidebar:
    loaded = widgets.model_selector("explore")
    lens = chosen_lens(loaded)
    show_truth = st.toggle("show the truth (simulated lenses)", value=True, key="explore_truth")
    mask = st.toggle("circular mask (same pixels at every angle)", value=True, key="explore_mask")
    how = st.radio("stretch (lens picture)", figures.STRETCHES, horizontal=True, key=STRETCH,
                   help="log: log(1 + x); asinh: linear for faint arcs, logarithmic for the bright ones")
    follow_model(loaded)
    sky = st.toggle("turn the sky, not the picture", key=SKY_KEY,
                    disabled=lens is None or not lens.can_turn_scene,
                    help="simulated lenses: re-render the scene at each angle (the instrument's own pixels and "
                         "noise) instead of resampling the picture, which also smooths its noise")
lens = widgets.fit_to_crop("explore", lens, loaded)
if loaded is None or lens is None:
    st.info("Choose a model and an image in the sidebar.")
else:
    widgets.image_size_note(loaded, lens)
    sky = sky and lens.can_turn_scene
    c_view, c_flip = st.columns([5, 1])
    with c_view:
        spec = view_controls(loaded, upright_inspection(loaded, lens, mask))
    flip = bool(c_flip.toggle("mirror first", key="explore_flip")) if loaded.group.dihedral else False
    scrub_section(loaded, lens, spec, show_truth, mask, flip, sky)
    live(loaded, lens, show_truth, mask, spec, flip, sky, how)
