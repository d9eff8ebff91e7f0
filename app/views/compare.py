"""Compare: two models side by side on the same rotating lens, their orbit curves overlaid."""

from __future__ import annotations

import numpy as np
import streamlit as st
import torch

from app import catalog, compute, figures, lenses, state, widgets
from app.catalog import LoadedModel

ANGLE = "compare_angle"


def model_column(loaded: LoadedModel, x: torch.Tensor, angle: float, mask: bool, slot: str):
    """Probabilities now and the orbit of one model; returns the orbit for the overlay."""
    result = compute.orbit_of(loaded, x, mask=mask)
    logits = compute.inspect_at(loaded, compute.input_at(x, angle, mask=mask)).logits
    probs = torch.softmax(logits[0].float(), -1).numpy()
    st.plotly_chart(figures.probability_bar(loaded.class_names, probs, logits[0].numpy(), title=loaded.label),
                    key=f"compare_probs_{slot}", width="stretch", theme=None)
    try:
        st.metric("invariance error, exact 90-deg angles", f"{result.exact_spread('C4'):.2e}")
    except ValueError:
        pass
    now = result.probabilities[:, int(np.argmax(probs))]
    st.caption(f"predicted {loaded.class_names[int(np.argmax(probs))]}: probability over the orbit "
               f"from {now.min():.3f} to {now.max():.3f}")
    return result


@st.fragment
def live(first: LoadedModel, second: LoadedModel, lens: lenses.LensImage, mask: bool) -> None:
    angle = st.slider("Rotation (deg)", 0.0, 359.0, 0.0, step=1.0, key=ANGLE)
    left, middle, right = st.columns([0.8, 1, 1])
    with left:
        x_show = lenses.prepared(lens, first.image_size, first.crop)
        st.image(figures.image_grid([("input now", compute.input_at(x_show, angle, mask=mask)[0, 0].numpy())],
                                    cmap="gray", cell=220, colorbar_label="normalised"))
    results, names = {}, {}
    for column, loaded, slot in ((middle, first, "a"), (right, second, "b")):
        with column:
            x = lenses.prepared(lens, loaded.image_size, loaded.crop)
            label = f"{slot.upper()}: {loaded.label}"
            results[label], names[label] = model_column(loaded, x, angle, mask, slot), loaded.class_names
    if first.class_names != second.class_names:
        st.warning(f"The two models have different classes (A: {', '.join(first.class_names)}; B: "
                   f"{', '.join(second.class_names)}): each curve below carries its own model's class names.")
    exact = sorted({g.angle_deg for m in (first, second) for g in m.group.elements if not g.flip})
    quantity = st.radio("Orbit of", ["probabilities", "logits"], horizontal=True, key="compare_quantity")
    st.plotly_chart(figures.orbit_figure(results, names, angle, exact, quantity,
                                         title="Both models over the orbit (solid: A, dashed: B)"),
                    key="compare_orbit", width="stretch", theme=None)


st.title("Compare")
with st.sidebar:
    st.subheader("Model A")
    first = widgets.model_selector("compare_a", "Model A", default=0)
    st.subheader("Model B")
    partner = catalog.partner_index(first, state.uploaded_checkpoints())  # the same list model_selector shows
    second = widgets.model_selector("compare_b", "Model B", default=partner)
    st.subheader("Lens")
    lens = widgets.lens_selector("compare", follow=first)
    mask = st.toggle("circular mask", value=True, key="compare_mask")
regressors = [m for m in (first, second) if m is not None and m.regression is not None]
if first is None or second is None or lens is None:
    st.info("Choose two models and an image in the sidebar.")
elif regressors:
    st.info(f"{regressors[0].label} is a regression checkpoint (it predicts {regressors[0].regression.name}), not a "
            "classifier: Compare overlays class probabilities. Open it in Explore to see its value over the orbit.")
else:
    live(first, second, lens, mask)
