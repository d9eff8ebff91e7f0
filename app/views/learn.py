"""Learn: equivariance on this data, one step at a time, every claim checked live in numbers."""

from __future__ import annotations

import streamlit as st
import torch

from app import catalog, compute, figures, lenses, settings, widgets
from eqlens.analysis import activations
from eqlens.groups import DEFAULT_GROUP, SUPPORTED_GROUPS, act_on_image, get_group


def section_group_acts(x: torch.Tensor, group) -> None:
    st.header("1. The group acting on a lens")
    st.markdown(f"{group.name} has {group.order} elements. Each moves the image: multiples of 90 deg and "
                "mirrors permute pixels exactly; 45 deg has to resample. A lens has no preferred "
                "orientation, so a classifier should not care which copy it sees.")
    panels = [(str(g), act_on_image(x[0, 0], g, supersample=2).numpy()) for g in group.elements]
    st.image(figures.image_grid(panels, cmap="gray", cell=110, colorbar_label="normalised"))


def section_lifting(x: torch.Tensor, group, g) -> None:
    st.header("2. A lifting kernel and its rotated copies")
    st.markdown("A lifting layer correlates the image with one kernel **in every orientation of the group**. "
                "Its output has a group axis: one map per orientation, `[B, C, |G|, H, W]`.")
    kernel = activations.oriented_kernel()
    bank = activations.rotated_kernels(kernel, group)
    panels = [(str(h), k.numpy()) for h, k in zip(group.elements, bank, strict=True)]
    st.image(figures.image_grid(panels, cmap="RdBu_r", symmetric=True, cell=90, colorbar_label="weight"))
    st.header("3. A feature map and its group channels, before and after a rotation")
    before = activations.lift(x, kernel, group)
    turned = act_on_image(x, g)
    after = activations.lift(turned, kernel, group)
    st.markdown(f"Left to right: the |G| channels of the lifted lens. Below: the same after turning the "
                f"input by **{g}**: every map turns and the channels cycle.")
    row = [(f"{h}", before[0, 0, h.index].numpy()) for h in group.elements]
    st.image(figures.image_grid(row, cmap="magma", cell=100, colorbar_label="response"), caption="upright input")
    row = [(f"{h}", after[0, 0, h.index].numpy()) for h in group.elements]
    st.image(figures.image_grid(row, cmap="magma", cell=100, colorbar_label="response"), caption=f"input after {g}")
    st.header("4. The commutative diagram, checked live")
    err = activations.equivariance_error(after, before, group, g.rot, g.flip)
    st.markdown("Lift then move (`rho(g) L(x)`) against move then lift (`L(g x)`):")
    st.latex(r"\frac{\lVert L(g\,x) - \rho(g)\,L(x)\rVert}{\lVert L(x)\rVert} = " + f"{err:.2e}")
    st.caption("float noise for exact elements (90-deg multiples, mirrors); resampling error at 45 deg")
    section_invariance(before, after, group, g)


def section_invariance(before: torch.Tensor, after: torch.Tensor, group, g) -> None:
    st.header("5. Invariance against equivariance")
    pooled_before, pooled_after = before.amax(dim=2), after.amax(dim=2)  # max over the group axis
    moved = act_on_image(pooled_before, g)
    eq_err = float((pooled_after - moved).norm() / pooled_before.norm())
    inv_before, inv_after = pooled_before.mean(dim=(-2, -1)), pooled_after.mean(dim=(-2, -1))
    inv_err = float((inv_after - inv_before).norm() / inv_before.norm())
    c1, c2 = st.columns(2)
    c1.metric("after max over the group: |map(gx) - g.map(x)| / |map(x)|", f"{eq_err:.2e}",
              help="still equivariant: the map turns with the input, the orientation axis is gone")
    c2.metric("after averaging over space too: |f(gx) - f(x)| / |f(x)|", f"{inv_err:.2e}",
              help="invariant: nothing left that could turn")
    st.markdown("Equivariant features **move** with the input and keep where things are; pooling over the group "
                "and then over space leaves **invariant** numbers that a classifier can use directly.")


def section_cnn(x_lens: lenses.LensImage) -> None:
    from eqlens.models import names, spec

    st.header("6. Why a plain CNN is not invariant")
    st.markdown("A CNN's kernels have one orientation. Rotating the lens changes which kernels respond, so "
                "its output wanders over the orbit; a group model pools over every orientation.")
    invariant = [n for n in names() if spec(n).invariant]
    choice = st.selectbox("invariant model to compare", invariant, key="learn_invariant") if invariant else None
    curves = {}
    for name in ["cnn", choice] if choice else ["cnn"]:
        group = DEFAULT_GROUP if spec(name).uses_group else "C1"
        loaded = catalog.load(catalog.untrained_key(name, group))
        x = lenses.prepared(x_lens, loaded.image_size, loaded.crop)
        result = compute.orbit_of(loaded, x)
        curves[loaded.label] = result
        st.metric(f"{loaded.label}: logit change at exact 90-deg rotations", f"{result.exact_spread('C4'):.2e}")
    st.plotly_chart(figures.orbit_figure(curves, catalog.DEFAULT_CLASS_NAMES, 0.0, [0, 90, 180, 270]),
                    key="learn_orbit", width="stretch", theme=None)


st.title("Learn: equivariance with lenses")
with st.sidebar:
    lens = widgets.lens_selector("learn")
    group = get_group(st.selectbox("Group", SUPPORTED_GROUPS, key="learn_group"))
    element_names = [str(g) for g in group.elements]
    pick = st.selectbox("Element g", range(1, group.order), format_func=lambda i: element_names[i], key="learn_element")
if lens is None:
    st.info("Choose an image in the sidebar.")
    st.stop()
x = lenses.prepared(lens, settings.UNTRAINED_IMAGE_SIZE)
section_group_acts(x, group)
section_lifting(x, group, group.elements[pick])
section_cnn(lens)
