"""Compare: two models side by side on the same rotating lens, their model cards, their orbit curves
overlaid and how far each moves from its upright prediction (the invariant one's flatness at the exact
angles). Opens on the invariant flagship against its plain twin; the sky can be turned instead of the picture."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import numpy as np
import streamlit as st
import torch

from app import card_panel, catalog, compute, figures, lenses, markup, settings, state, widgets
from app.catalog import LoadedModel
from eqlens.data.transforms import apply_circular_mask

ANGLE = "compare_angle"
B_MODEL, B_FOLLOWED, SKY = "compare_b_model", "compare_b_followed", "compare_sky"

WIGGLE_NOTE = ("Between the exact angles the picture is resampled (bilinear interpolation), which blurs it a little "
               "differently at every angle, so even an exactly invariant model wiggles there; at the exact angles "
               "(diamonds: quarter turns, a pixel permutation, nothing interpolated) an invariant model stays at "
               "float rounding.")
SKY_NOTE = ("Turned sky: every angle is the scene turned and rendered again (no picture is resampled, so no "
            "interpolation wiggle), with the noise drawn anew on the instrument's pixel grid: even an invariant "
            "model moves a little at the exact angles, by how much the noise changes its reading. Turn the "
            "picture instead (the toggle) to see the exact angles where an invariant model cannot move at all.")


def _checkpoint_name(key: str) -> str | None:
    return Path(key.partition(":")[2]).stem if key.startswith("ckpt:") else None


def first_index(uploaded: dict) -> int:
    """Model A opens on the flagship (settings.COMPARE_DEFAULT) when it is offered, else the first entry."""
    names = [_checkpoint_name(e.key) for e in catalog.entries(uploaded)]
    return names.index(settings.COMPARE_DEFAULT) if settings.COMPARE_DEFAULT in names else 0


def partner_index(first: LoadedModel | None, uploaded: dict) -> int:
    """Model B for ``first``: the flagship's plain twin (the first of settings.COMPARE_PARTNERS present),
    else a checkpoint trained on the same data with the same classes (:func:`catalog.partner_index`)."""
    options = catalog.entries(uploaded)
    if first is not None and _checkpoint_name(first.key) == settings.COMPARE_DEFAULT:
        names = [_checkpoint_name(e.key) for e in options]
        for partner in settings.COMPARE_PARTNERS:
            if partner in names:
                return names.index(partner)
    return catalog.partner_index(first, uploaded)


def follow_first(first: LoadedModel | None, uploaded: dict) -> int:
    """Whenever model A changes, model B moves to its partner and the sky toggle to A's training view (turned
    renderings or resampled pictures), before their widgets exist; both stay the user's choice until A
    changes again. Returns B's default position."""
    index = partner_index(first, uploaded)
    key = first.key if first is not None else None
    if st.session_state.get(B_FOLLOWED) != key:
        st.session_state[B_FOLLOWED] = key
        st.session_state[B_MODEL] = catalog.entries(uploaded)[index].key
        st.session_state[SKY] = card_panel.learnt_from_renderings(first)
    return index


def model_column(loaded: LoadedModel, result, x_now: torch.Tensor, quarter_turn_error: float, sky: bool,
                 slot: str) -> None:
    """Probabilities now, the exact-angle invariance error and the range over the orbit of one model."""
    logits = compute.inspect_at(loaded, x_now, attention=False).logits
    probs = torch.softmax(logits[0].float(), -1).numpy()
    st.plotly_chart(figures.probability_bar(loaded.class_names, probs, logits[0].numpy(), title=loaded.label),
                    key=f"compare_probs_{slot}", width="stretch", theme=None)
    st.metric("invariance error, exact 90-deg angles", f"{quarter_turn_error:.2e}",
              help="largest relative change of the logits when the picture makes a quarter turn (a pixel "
                   "permutation, nothing resampled): 0 for an invariant model"
                   + (", whichever view the orbit below shows" if sky else ""))
    top = int(np.argmax(probs))
    now = result.probabilities[:, top]
    scope = card_panel.equivariance_scope(card_panel.card_facts(loaded.card) if loaded.trained else None)
    st.caption(f"predicted {markup.text(loaded.class_names[top])}: probability over the orbit "
               f"from {now.min():.3f} to {now.max():.3f}" + (f"; {scope}" if scope else ""))


def exact_angles(*models: LoadedModel) -> list[float]:
    """The angles of the models' groups that turn pixels exactly, no mirror (:func:`compute.exact_turns`)."""
    return compute.exact_turns(*(m.group for m in models))


def wiggle_numbers(results: dict, exact: list[float]) -> str:
    """Per model: the largest change from upright at the exact angles and between them."""
    parts = []
    for label, res in results.items():
        change = figures.orbit_change(res)
        at_exact = np.array([any(abs(a - e) < 1e-9 for e in exact) for a in res.angles])
        on, off = change[at_exact & (res.angles != 0)], change[~at_exact]
        if len(on) and len(off):
            parts.append(f"{label}: {on.max():.1e} at the exact angles, up to {off.max():.1e} between")
    return "; ".join(parts)


def scene_trained_note(*models: LoadedModel) -> str:
    """Models trained on turned renderings never saw a resampled picture: their wiggle is large, say why."""
    scene = [m.label for m in models if (facts := card_panel.card_facts(m.card)) is not None
             and facts.augment_mode == "scene"]
    if not scene:
        return ""
    return (f" {' and '.join(scene)} learnt rotations from turned renderings (its card: scene augmentation), never "
            "from resampled pictures, so it reads the interpolation's blur as a different lens: turn the sky to see "
            "it between the exact angles as a telescope would.")


def orbit_csv(results: dict, names: dict) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["model", "angle_deg", "class", "probability", "logit", "max_change_from_upright"])
    for label, res in results.items():
        change = figures.orbit_change(res)
        for a, angle in enumerate(res.angles):
            for k, name in enumerate(names[label]):
                writer.writerow([label, f"{angle:g}", name, f"{res.probabilities[a, k]:.8g}",
                                 f"{res.logits[a, k]:.8g}", f"{change[a]:.4g}"])
    return out.getvalue()


def orbit_and_now(loaded: LoadedModel, lens: lenses.LensImage, angle: float, mask: bool, sky: bool):
    """The model's orbit (picture resampled, or the sky turned and rendered) and its input at ``angle``."""
    if sky:
        turned = lenses.sky_turner(lens, loaded.image_size, loaded.crop)
        result = compute.sky_orbit_of(loaded, turned, (lens.scene, loaded.image_size, loaded.crop), mask)
        x_now = turned([angle])
        return result, apply_circular_mask(x_now) if mask else x_now
    x = lenses.prepared(lens, loaded.image_size, loaded.crop)
    return compute.orbit_of(loaded, x, mask=mask), compute.input_at(x, angle, mask=mask)


def quarter_turn_error(loaded: LoadedModel, lens: lenses.LensImage, mask: bool) -> float:
    """The largest relative logit change over the picture's exact turns of the model's group (the quarter turns:
    4 angles; the orbit's own when cached)."""
    return compute.exact_turn_spread(loaded, lenses.prepared(lens, loaded.image_size, loaded.crop), mask)


@st.fragment
def live(first: LoadedModel, second: LoadedModel, lens: lenses.LensImage, mask: bool, sky: bool) -> None:
    angle = st.slider("Rotation (deg)", 0.0, 359.0, 0.0, step=1.0, key=ANGLE, format="%d")
    left, middle, right = st.columns([0.8, 1, 1])
    results, names, shown = {}, {}, None
    for column, loaded, slot in ((middle, first, "a"), (right, second, "b")):
        result, x_now = orbit_and_now(loaded, lens, angle, mask, sky)
        shown = x_now if shown is None else shown
        label = f"{slot.upper()}: {loaded.label}"
        results[label], names[label] = result, loaded.class_names
        with column:
            model_column(loaded, result, x_now, quarter_turn_error(loaded, lens, mask), sky, slot)
    with left:
        st.image(figures.image_grid([("A's input", shown[0, 0].numpy())], cmap="gray", cell=220,
                                    colorbar_label="normalised"),
                 caption="the sky turned and rendered again" if sky else "the picture turned (resampled)")
    if first.class_names != second.class_names:
        st.warning(f"The two models have different classes (A: {markup.text(', '.join(first.class_names))}; B: "
                   f"{markup.text(', '.join(second.class_names))}): each curve below carries its own model's class "
                   "names.")
    exact = exact_angles(first, second)
    quantity = st.radio("Orbit of", ["probabilities", "logits"], horizontal=True, key="compare_quantity")
    curves, change = st.columns(2)
    with curves:
        st.plotly_chart(figures.orbit_figure(results, names, angle, exact, quantity,
                                             title="Both models over the orbit (solid: A, dashed: B)"),
                        key="compare_orbit", width="stretch", theme=None)
    with change:
        st.plotly_chart(figures.orbit_change_figure(results, exact, angle,
                                                    title="Change from the upright prediction (log scale)"),
                        key="compare_change", width="stretch", theme=None)
    numbers = wiggle_numbers(results, exact)
    st.caption((SKY_NOTE if sky else WIGGLE_NOTE) + (f" Here: {numbers}." if numbers else "")
               + ("" if sky else scene_trained_note(first, second)))
    st.download_button("Orbit numbers (CSV)", orbit_csv(results, names), key="compare_download",
                       file_name=f"compare_{first.label}_{second.label}{'_sky' if sky else ''}.csv", mime="text/csv",
                       help="every angle of both orbits: probabilities, logits and the change from upright")


st.title("Compare")
uploaded = state.uploaded_checkpoints()  # the same list model_selector shows
with st.sidebar:
    st.subheader("Model A")
    first = widgets.model_selector("compare_a", "Model A", default=first_index(uploaded))
    st.subheader("Model B")
    second = widgets.model_selector("compare_b", "Model B", default=follow_first(first, uploaded))
    st.subheader("Lens")
    lens = widgets.lens_selector("compare", follow=first)
    mask = st.toggle("circular mask", value=True, key="compare_mask")
    sky = st.toggle("turn the sky, not the picture", key=SKY,
                    disabled=lens is None or not lens.can_turn_scene,
                    help="simulated lenses: re-render the scene at each angle (the instrument's own pixels and "
                         "noise) instead of resampling the picture")
lens = widgets.fit_to_crop("compare", lens, first, second)
regressors = [m for m in (first, second) if m is not None and m.regression is not None]
if first is None or second is None or lens is None:
    st.info("Choose two models and an image in the sidebar.")
elif regressors:
    st.info(f"{markup.text(regressors[0].label)} is a regression checkpoint (it predicts "
            f"{markup.text(regressors[0].regression.name)}), not a "
            "classifier: Compare overlays class probabilities. Open it in Explore to see its value over the orbit.")
else:
    live(first, second, lens, mask, bool(sky and lens.can_turn_scene))
if first is not None and second is not None:
    card_a, card_b = st.columns(2)
    with card_a:
        card_panel.card_panel(first, f"A: {first.label}")
    with card_b:
        card_panel.card_panel(second, f"B: {second.label}")
