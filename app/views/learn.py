"""Learn: equivariance on this data, one step at a time, every claim checked live in numbers."""

from __future__ import annotations

import streamlit as st
import torch

from app import catalog, compute, figures, lenses, settings, widgets
from eqlens.analysis import activations
from eqlens.groups import DEFAULT_GROUP, SUPPORTED_GROUPS, act_on_group_channels, act_on_image, get_group

DIAGRAM_METRIC = "|L(g x) - ρ(g) L(x)| / |L(x)|"


def section_group_acts(x: torch.Tensor, group) -> None:
    st.header("1. The group acting on a lens")
    st.markdown(f"{group.name} has {group.order} elements. Each moves the image: multiples of 90 deg and "
                "mirrors permute pixels exactly; 45 deg has to resample. A lens has no preferred "
                "orientation, so a classifier should not care which copy it sees.")
    panels = [(figures.element_label(g), act_on_image(x[0, 0], g, supersample=2).numpy()) for g in group.elements]
    st.image(figures.image_grid(panels, cmap="gray", cell=110, colorbar_label="normalised"))


def teaching_kernel() -> tuple[torch.Tensor, str]:
    """The first lifting kernel of the shipped invariant flagship (a trained kernel: what the network
    really looks for), or the hand-made oriented kernel when no such checkpoint is there; with a caption."""
    key = catalog.flagship_key()
    if key is not None:
        loaded = catalog.load(key)
        found = activations.first_lifting_kernel(loaded.model)
        if found is not None:
            kernel, channel = found
            return kernel, (f"The kernel is channel {channel} of the first layer of {loaded.label} (trained), "
                            f"moved by the same LiftingConv the network runs.")
    return activations.oriented_kernel(), "A hand-made kernel with no symmetry (no trained group model is shipped)."


def section_lifting(x: torch.Tensor, group, g) -> None:
    st.header("2. A lifting kernel and its rotated copies")
    st.markdown("A lifting layer correlates the image with one kernel **in every orientation of the group**. "
                "Its output has a group axis: one map per orientation, `[B, C, |G|, H, W]`.")
    kernel, source = teaching_kernel()
    layer = activations.lifting_layer(kernel, group)  # the networks' own LiftingConv, holding that kernel
    st.caption(source)
    bank = layer.transformed_kernels()[:, 0, 0].detach()
    panels = [(figures.element_label(h), k.numpy()) for h, k in zip(group.elements, bank, strict=True)]
    st.image(figures.image_grid(panels, cmap="RdBu_r", symmetric=True, cell=90, colorbar_label="weight"))
    st.header("3. A feature map and its group channels, before and after a rotation")
    turned = act_on_image(x, g)
    with torch.no_grad():
        before, after = layer(x), layer(turned)
    st.markdown(f"Left to right: the |G| channels of the lifted lens. Below: the same after turning the "
                f"input by **{g}**: every map turns and the channels cycle.")
    row = [(figures.element_label(h), before[0, 0, h.index].numpy()) for h in group.elements]
    st.image(figures.image_grid(row, cmap="magma", cell=100, colorbar_label="response"), caption="upright input")
    row = [(figures.element_label(h), after[0, 0, h.index].numpy()) for h in group.elements]
    st.image(figures.image_grid(row, cmap="magma", cell=100, colorbar_label="response"), caption=f"input after {g}")
    st.header("4. The commutative diagram, checked live")
    err = activations.equivariance_error(after, before, group, g.rot, g.flip)
    moved = act_on_group_channels(before, group, g)
    st.markdown("Two ways round the square: **move, then lift** (`L(g x)`, down the right) and **lift, then "
                "move** (`ρ(g) L(x)`: every map turned and the orientation channels permuted, along the bottom). "
                "An equivariant layer gives the same maps either way. Shown: the identity's orientation channel.")
    picture = figures.commutative_diagram(x[0, 0].numpy(), turned[0, 0].numpy(), before[0, 0, 0].numpy(),
                                          moved[0, 0, 0].numpy(), after[0, 0, 0].numpy(),
                                          figures.element_label(g), err)
    st.image(picture)
    st.metric(DIAGRAM_METRIC, f"{err:.2e}", help="relative distance between the two ways round, over every channel")
    exact = g.is_exact_on_pixels
    st.caption("float noise: g permutes the pixels exactly (a 90-deg multiple or a mirror)" if exact else
               f"not zero: {figures.element_label(g)} resamples the pixels, and the resampled image's lift is not "
               "exactly the lift turned")
    widgets.export_buttons("learn_diagram", picture, {"g": str(g), "error": err, "x": x[0, 0].numpy(),
                                                      "gx": turned[0, 0].numpy(),
                                                      "L_x_identity_channel": before[0, 0, 0].numpy(),
                                                      "rho_g_L_x_identity_channel": moved[0, 0, 0].numpy(),
                                                      "L_gx_identity_channel": after[0, 0, 0].numpy()})
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


def twin_pair() -> tuple[list[str], bool]:
    """Entry keys of the plain twin and the invariant flagship, trained on the same lenses (True), or of
    the untrained cnn and gcnn when those checkpoints are not shipped (False)."""
    trained = [catalog.plain_twin_key(), catalog.flagship_key()]
    if None not in trained:
        return trained, True
    return [catalog.untrained_key("cnn", DEFAULT_GROUP), catalog.untrained_key("gcnn", DEFAULT_GROUP)], False


def section_cnn(x_lens: lenses.LensImage) -> None:
    st.header("6. Why a plain CNN is not invariant")
    st.markdown("A CNN's kernels have one orientation. Rotating the lens changes which kernels respond, so "
                "its output wanders over the orbit; a group model pools over every orientation.")
    keys, trained = twin_pair()
    sky = x_lens.scene is not None
    curves, seen_parts, groups = {}, [], []
    columns = st.columns(len(keys))
    for key, column in zip(keys, columns, strict=True):
        loaded = catalog.load(key)
        if loaded.trained and loaded.card is not None and loaded.card.training.get("images_seen"):
            training = loaded.card.training
            seen_parts.append(f"{loaded.label}: {int(training.get('images_seen') or 0):,} lenses seen, "
                              f"epoch {training.get('epochs_done')} of {(training.get('config') or {}).get('epochs')}")
        x = lenses.prepared(x_lens, loaded.image_size, loaded.crop)
        exact, groups = compute.exact_turn_spread(loaded, x), [*groups, loaded.group]
        if sky:
            turned = lenses.sky_turner(x_lens, loaded.image_size, loaded.crop)
            curves[loaded.label] = compute.sky_orbit_of(loaded, turned, (x_lens.scene, loaded.image_size,
                                                                         loaded.crop))
        else:
            curves[loaded.label] = compute.orbit_of(loaded, x)
        column.metric(f"{loaded.label}: logit change under the picture's exact 90-deg turns", f"{exact:.1e}")
    quantity = st.radio("orbit of", ["logits", "probabilities"], horizontal=True, key="learn_quantity",
                        help="a confident model's probabilities saturate near 1 and hide the wander its logits show")
    seen = "; ".join(seen_parts)
    st.plotly_chart(figures.orbit_figure(curves, catalog.DEFAULT_CLASS_NAMES, 0.0, compute.exact_turns(*groups),
                                         quantity=quantity), key="learn_orbit", width="stretch", theme=None)
    st.caption((f"Trained on the same fresh Model I lenses with the same crop and schedule ({seen}); "
                if trained else "Untrained models (the trained twins are not in the checkpoints folder); ")
               + ("the orbit turns the sky: each angle is the scene rendered again, so nothing is "
                  "interpolated and any wander is the model's own." if sky else
                  "the orbit turns the picture (resampled between the exact angles)."))


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
twins = widgets.fit_to_crop("learn", lens, *map(catalog.load, twin_pair()[0]))
if twins is None:
    st.stop()
section_cnn(twins)
