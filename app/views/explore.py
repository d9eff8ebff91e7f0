"""Explore: one model, one lens, a rotation slider driving everything live.

The slider and all it drives sit in one fragment, so a move reruns only that: the orbit is one
cached batched forward (a lookup), the rest is one inspected forward plus composed PNGs.
"""

from __future__ import annotations

import numpy as np
import streamlit as st
import torch
from PIL import Image

from app import compute, figures, lenses, regression, state, widgets
from app.catalog import LoadedModel
from eqlens.analysis import activations
from eqlens.analysis import attention as attention_lib
from eqlens.analysis import attribution as attribution_lib
from eqlens.groups import get_group

ANGLE = "explore_angle"
VIEWS = ("Attention", "Group channels", "Attributions")
PIN = "explore_pinned_lens"


def _set_angle(value: float) -> None:
    st.session_state[ANGLE] = float(value)


def angle_controls(loaded: LoadedModel) -> tuple[float, bool]:
    """A continuous slider and one button per rotation of the model's group; a mirror toggle for D_N."""
    group = loaded.group
    st.session_state.setdefault(ANGLE, 0.0)
    angle = st.slider("Rotation (deg, counter-clockwise)", 0.0, 359.0, step=1.0, key=ANGLE)
    # A plain model has no group of its own: offer the pixel-exact 90-deg turns.
    reference = group if group.order_rotations >= 4 else get_group("C4")
    exact = [g for g in reference.elements if not g.flip]
    cols = st.columns([1.4] + [1] * len(exact) + [max(1, 12 - len(exact))])
    cols[0].caption(f"{reference.name} angles")
    for col, g in zip(cols[1:], exact, strict=False):
        col.button(f"{g.angle_deg:g}°", key=f"explore_angle_btn_{g.rot}", on_click=_set_angle, args=(g.angle_deg,),
                   width="stretch")
    flip = st.toggle("mirror first", key="explore_flip") if group.dihedral else False
    return float(angle), bool(flip)


def lens_panel(lens: lenses.LensImage, x_rot: torch.Tensor, angle: float, flip: bool, show_truth: bool,
               sky: bool = False) -> None:
    shown = lens
    if sky:  # the scene turned and rendered again: its own pixels, noise and (turned) truth
        shown = lenses.turned_scene(lens, -angle if flip else angle)
        turned = figures.lens_with_truth(shown.image, shown.truth if show_truth else None, size=300)
        if flip:
            turned = turned.transpose(Image.FLIP_LEFT_RIGHT)
    else:
        upright = figures.lens_with_truth(lens.image, lens.truth if show_truth else None, size=300)
        if flip:
            upright = upright.transpose(Image.FLIP_LEFT_RIGHT)
        turned = upright.rotate(angle, resample=Image.BILINEAR)  # PIL turns counter-clockwise, like eqlens
    model_view = figures.image_grid([("model input", x_rot[0, 0].numpy())], cmap="gray", cell=150,
                                    colorbar_label="normalised")
    st.image(turned, caption=f"{shown.source}" + (f" (true: {lens.label})" if lens.label else ""),
             width="stretch")
    st.image(model_view)


def prediction_panel(loaded: LoadedModel, logits: torch.Tensor) -> np.ndarray:
    probs = torch.softmax(logits[0].float(), dim=-1).numpy()
    st.plotly_chart(figures.probability_bar(loaded.class_names, probs, logits[0].numpy()), key="explore_probs",
                    width="stretch", theme=None)
    top = int(np.argmax(probs))
    with st.container(key="explore_prediction"):
        st.markdown(f"**prediction:** `{loaded.class_names[top]}` &nbsp; p = `{probs[top]:.4f}`")
        st.caption("logits: " + ", ".join(f"{n} {z:+.4f}" for n, z in zip(loaded.class_names, logits[0].tolist(),
                                                                          strict=True)))
    return probs


def regression_panel(loaded: LoadedModel, logits: torch.Tensor, truth: float | None) -> None:
    """The predicted physical value now (a regression checkpoint: one output, decoded by the card's
    scaler) beside the simulator's truth of the lens when it carries the target."""
    task = loaded.regression
    value = float(task.values(logits)[0])
    with st.container(key="explore_prediction"):
        st.metric(f"predicted {task.name} ({task.unit})", f"{value:.6f}",
                  delta=None if truth is None else f"{value - truth:+.4f} vs truth", delta_color="off")
        if truth is None:
            st.caption(f"no true {task.name} for this lens (only simulated lenses of its class carry one)")
        else:
            st.metric(f"true {task.name} ({task.unit})", f"{truth:.6f}")
        st.caption(f"regression checkpoint ({task.task}): raw output {float(logits.reshape(-1)[0]):+.4f}, "
                   f"decoded as {task.scaler.mean:.4g} + {task.scaler.std:.4g} x output")


SKY_NOTE = ("turned sky: every angle is a new rendering with the instrument's own noise, so even an exactly "
            "invariant model moves a little; what is left is how the model reads the lens at that orientation")


def regression_orbit_panel(loaded: LoadedModel, result, angle: float, truth: float | None, sky: bool = False) -> None:
    task = loaded.regression
    values = task.values(result.logits)
    exact = [g.angle_deg for g in loaded.group.elements if not g.flip]
    st.plotly_chart(figures.regression_orbit_figure(result.angles, values, task.name, task.unit, angle, exact, truth),
                    key="explore_orbit", width="stretch", theme=None)
    change = None if sky else regression.exact_change(result.angles, values)
    st.caption(f"over the orbit: {values.min():.4f} to {values.max():.4f} {task.unit}"
               + ("" if change is None else f"; largest change at the exact 90-deg angles {change:.2e}")
               + (f". {SKY_NOTE}" if sky else ""))


def orbit_panel(loaded: LoadedModel, result, angle: float, sky: bool = False) -> None:
    quantity = st.radio("Orbit of", ["probabilities", "logits"], horizontal=True, key="explore_orbit_quantity")
    exact = [g.angle_deg for g in loaded.group.elements if not g.flip]
    st.plotly_chart(figures.orbit_figure({loaded.label: result}, loaded.class_names, angle, exact, quantity),
                    key="explore_orbit", width="stretch", theme=None)
    if sky:
        consistent = float((result.probabilities.argmax(-1) == result.probabilities[0].argmax()).mean())
        st.caption(f"{SKY_NOTE}. Same class as at 0 deg at {consistent:.0%} of the angles.")
        return
    try:
        st.caption(f"invariance error at the exact 90-deg angles: {result.exact_spread('C4'):.2e} (relative, logits)")
    except ValueError:
        pass


def attention_tab(insp, x_rot: torch.Tensor) -> None:
    if not insp.attention:
        st.info("This model has no attention blocks.")
        return
    size = x_rot.shape[-1]
    c1, c2, c3 = st.columns(3)
    row = c1.slider("query row", 0, size - 1, size // 2, key="explore_query_row")
    col = c2.slider("query column", 0, size - 1, min(size - 1, size // 2 + size // 5), key="explore_query_col")
    names = list(insp.attention)
    block = c3.selectbox("block", names, key="explore_block")
    att = insp.attention[block]
    base = x_rot[0, 0].numpy()
    heads = att.weights.shape[1]
    panels = [("mean of heads", attention_lib.query_map(att, (row, col), (size, size))[0])]
    panels += [(f"head {h}", attention_lib.query_map(att, (row, col), (size, size), head=h)[0]) for h in range(heads)]
    panels.append(("rollout (all blocks)", attention_lib.rollout_map(list(insp.attention.values()), (row, col),
                                                                     (size, size))[0]))
    rgb = [(t, figures.mark_point(figures.overlay(base, m.numpy(), cmap="viridis"), row, col)) for t, m in panels]
    st.image(figures.image_grid(rgb, cmap="viridis", cell=150, columns=min(len(rgb), 5),
                                colorbar_label="weight/max", overlay_range=(0.0, 1.0)),
             caption=f"{block}: query grid {att.query_grid}, key grid {att.key_grid}; the cross marks the query")


def group_channels_tab(loaded: LoadedModel, insp, angle: float, flip: bool, upright_insp) -> None:
    if not insp.group_channels:
        st.info("This model keeps no group channels (no regular feature field to show).")
        return
    c1, c2 = st.columns(2)
    tap = c1.selectbox("layer", list(insp.group_channels), key="explore_gc_layer")
    features = insp.group_channels[tap]
    field = c2.number_input("field", 0, features.shape[1] - 1, 0, key="explore_gc_field")
    labelled = activations.channel_orbit(features, int(field), loaded.group)
    st.image(figures.image_grid([(t, m[0].numpy()) for t, m in labelled], cmap="magma", cell=110,
                                colorbar_label="activation"),
             caption="the |G| orientation channels now: turning the input moves each map and cycles them")
    try:
        steady = activations.stabilise(features, loaded.group, angle, flip)
    except ValueError as err:
        st.info(str(err))
        return
    st.image(figures.image_grid([(t, m[0].numpy()) for t, m in activations.channel_orbit(steady, int(field),
                                                                                        loaded.group)],
                                cmap="magma", cell=110, colorbar_label="activation"),
             caption="stabilised: rotated back into the input's frame (stays still for an equivariant layer)")
    reference = upright_insp.group_channels[tap]
    err = float((steady - reference).norm() / reference.norm().clamp_min(1e-12))
    st.metric("|stabilised - upright| / |upright|", f"{err:.2e}")


def attribution_tab(loaded: LoadedModel, lens, x_rot, x_up, angle: float, flip: bool, predicted: int) -> None:
    methods = list(attribution_lib.METHODS)
    c1, c2, c3 = st.columns(3)
    method = c1.selectbox("method", methods, index=methods.index("gradcam"), format_func=attribution_lib.METHODS.get,
                          key="explore_attr_method")
    target = c2.selectbox("class", range(len(loaded.class_names)), index=predicted,
                          format_func=lambda i: loaded.class_names[i], key="explore_attr_target")
    layer = None
    if method == "gradcam":
        spatial = [n for n, t in loaded.model.taps().items() if t.kind != "features"]
        layer = c3.selectbox("layer", spatial, index=len(spatial) - 1, key="explore_attr_layer") if spatial else None
    back = st.toggle("rotate back into the upright frame", value=True, key="explore_attr_back")
    try:
        attr = compute.attribution_at(loaded, lens.digest, x_rot, angle, method, int(target), layer, flip)
        panels = [("attribution", figures.overlay(x_rot[0, 0].numpy(), attr.numpy(), "RdBu_r", symmetric=True)),
                  ("signed", attr.numpy())]
        if back:
            upright = compute.attribution_at(loaded, lens.digest, x_up, 0.0, method, int(target), layer)
            turned_back = attribution_lib.rotate_back(attr[None], angle, flip)[0]
            exact = angle % 90 == 0
            err = attribution_lib.attribution_invariance_error(upright[None], turned_back[None], exact=exact)
            panels += [("rotated back", turned_back.numpy()), ("upright", upright.numpy())]
    except (ValueError, RuntimeError) as exc:
        st.warning(f"{attribution_lib.METHODS[method]} is not available for this model: {exc}")
        return
    st.image(figures.image_grid(panels, cmap="RdBu_r", symmetric=True, cell=150, colorbar_label="attribution"))
    if back:
        st.metric("attribution invariance error |A(x) - R⁻¹A(Rx)| / |A(x)|", f"{err:.3e}",
                  help="0 for an invariant model at exact angles; inside the inscribed disk otherwise")


@st.fragment
def live(loaded: LoadedModel, lens: lenses.LensImage, show_truth: bool, mask: bool, sky: bool = False) -> None:
    angle, flip = angle_controls(loaded)
    # One analysis view at a time (tabs would run all three on every move); its radio sits below
    # the main row, but the model work must know the choice first.
    view = st.session_state.get("explore_view", VIEWS[0])
    turned = None
    if sky:
        def turned(angles):
            return lenses.turned_inputs(lens, angles, loaded.image_size, loaded.crop)
    now = compute.move(loaded, lenses.prepared(lens, loaded.image_size, loaded.crop), angle, flip, mask, lens.digest,
                       attention=view == "Attention", upright=view == "Group channels", turned=turned,
                       scene_key=(lens.scene, loaded.image_size, loaded.crop))
    x_rot, insp = now.x_rot, now.inspection
    left, middle, right = st.columns([1, 1.1, 1.6])
    with left:
        lens_panel(lens, x_rot, angle, flip, show_truth, sky)
    if loaded.regression is None:
        with middle:
            probs = prediction_panel(loaded, insp.logits)
        with right:
            orbit_panel(loaded, now.orbit, angle, sky)
    else:
        truth = loaded.regression.true_value(lens.truth)
        probs = np.ones(1)  # one output: the attributions explain it
        with middle:
            regression_panel(loaded, insp.logits, truth)
        with right:
            regression_orbit_panel(loaded, now.orbit, angle, truth, sky)
    st.radio("View", VIEWS, horizontal=True, key="explore_view", label_visibility="collapsed")
    if view == "Attention":
        attention_tab(insp, x_rot)
    elif view == "Group channels":
        group_channels_tab(loaded, insp, angle, flip, now.upright)
    else:
        attribution_tab(loaded, lens, x_rot, now.x_up, angle, flip, int(np.argmax(probs)))


def chosen_lens(loaded) -> lenses.LensImage | None:
    """The lens another page sent (pinned until dismissed), else the sidebar's choice."""
    if PIN in st.session_state:
        lens = st.session_state[PIN]
        st.info(f"Showing {lens.source}" + (f" (true class: {lens.label})" if lens.label else ""))
        if st.button("Choose another image", key="explore_unpin"):
            del st.session_state[PIN]
            st.rerun()
        return lens
    return widgets.lens_selector("explore", follow=loaded)


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
    sky = st.toggle("turn the sky, not the picture", value=False, key="explore_sky",
                    disabled=lens is None or not lens.can_turn_scene,
                    help="simulated lenses: re-render the scene at each angle (the instrument's own pixels and "
                         "noise) instead of resampling the picture, which also smooths its noise")
if loaded is None or lens is None:
    st.info("Choose a model and an image in the sidebar.")
else:
    widgets.image_size_note(loaded, lens)
    live(loaded, lens, show_truth, mask, sky and lens.can_turn_scene)
