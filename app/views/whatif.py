"""What if: one simulated lens, the sliders on its scene's own parameters, the model's reading following them.

The scene is edited by :func:`eqlens.simulation.whatif.edit_scene` and rendered by
:func:`eqlens.simulation.whatif.render_scene` with the noise of the lens's own (seed, index), so as a slider
moves only the physics changes; the model reads it through :func:`eqlens.checkpoint.predict`. The sliders and
everything they drive run in one fragment: a move reruns only that (one rendering, one forward).
"""

from __future__ import annotations

import math
import time

import numpy as np
import streamlit as st
import torch

from app import figures, lenses, state, widgets
from eqlens.simulation import get_config
from eqlens.simulation import whatif as whatif_lib

CONFIGS = tuple(dict.fromkeys(("model_i", "model_i_varied", *lenses.SIM_CONFIGS)))
PLOT_CONFIG = {"displaylogo": False, "toImageButtonOptions": {"format": "png", "scale": 2}}
LENS = "whatif_lens"  # (config, class index, seed) whose sliders are shown
DRAWN = "whatif_drawn"  # (model key, lens) -> the drawn scene's truth and the model's reading of it
# slider name -> (scene edit, slider lo, hi, step, format, how the slider maps to the edit's value)
SLIDERS = {
    "theta_E": ("theta_E", 0.6, 2.2, 0.0005, "%.4f", None),
    "source_R_sersic": ("source_R_sersic", 0.05, 0.8, 0.005, "%.3f", None),
    "source_x": ("source_x", -1.0, 1.0, 0.005, "%.3f", None),
    "source_y": ("source_y", -1.0, 1.0, 0.005, "%.3f", None),
    "shear_modulus": ("shear_modulus", 0.0, 0.3, 0.001, "%.3f", None),
    "shear_angle_deg": ("shear_angle_deg", 0.0, 180.0, 1.0, "%.0f", None),
    "log10_exposure": ("exposure", 2.0, 5.0, 0.01, "%.2f", "log10"),
    "log10_subhalo_scale": ("subhalo_mass_scale", -2.0, 2.0, 0.02, "%.2f", "log10"),
    "log10_axion_mass": ("log10_axion_mass", -25.0, -21.0, 0.01, "%.2f", None),
}
LABELS = {
    "theta_E": "Einstein radius theta_E (arcsec)",
    "source_R_sersic": "source size R_sersic (arcsec)",
    "source_x": "source centre x (arcsec)",
    "source_y": "source centre y (arcsec)",
    "shear_modulus": "external shear |gamma|",
    "shear_angle_deg": "shear angle (deg)",
    "log10_exposure": "log10 exposure (s)",
    "log10_subhalo_scale": "log10 of the factor on every subhalo's mass",
    "log10_axion_mass": "log10 axion mass (eV): the vortex's length ~ 1 / m",
}


@st.cache_resource(show_spinner=False, max_entries=4)
def simulator(config_name: str):
    from eqlens.simulation import LensSimulator

    return LensSimulator(config_name, device="cpu", dtype=torch.float32)


def drawn_scene(config_name: str, class_index: int, seed: int):
    """The scene the simulator draws for the lens (float32 on the CPU: the app's own rendering)."""
    return simulator(config_name).sample(seed, [0], [class_index])


def slider_value(name: str, edit_value: float) -> float:
    spec = SLIDERS[name]
    value = math.log10(edit_value) if spec[5] == "log10" else edit_value
    return float(min(max(value, spec[1]), spec[2]))


def edit_value(name: str, value: float) -> float:
    return 10.0 ** value if SLIDERS[name][5] == "log10" else float(value)


def slider_key(name: str) -> str:
    return f"whatif_slider_{name}"


def reset(params) -> None:
    """Every slider back to the drawn scene."""
    drawn = whatif_lib.scene_values(params)
    for name, spec in SLIDERS.items():
        if spec[0] in drawn:
            st.session_state[slider_key(name)] = slider_value(name, drawn[spec[0]])


def changes_from(params) -> dict[str, float]:
    """The edits the sliders ask for: only those whose value differs from the drawn scene's (shown rounded
    to the slider's step), so an untouched slider leaves its fields exactly as drawn."""
    drawn = whatif_lib.scene_values(params)
    out = {}
    for name, spec in SLIDERS.items():
        if spec[0] not in drawn or slider_key(name) not in st.session_state:
            continue
        value = float(st.session_state[slider_key(name)])
        if abs(value - slider_value(name, drawn[spec[0]])) > spec[3] / 2:
            out[spec[0]] = edit_value(name, value)
    return out


def sliders(params) -> None:
    drawn = whatif_lib.scene_values(params)
    names = [n for n, spec in SLIDERS.items() if spec[0] in drawn]
    cols = st.columns(3)
    for i, name in enumerate(names):
        spec = SLIDERS[name]
        with cols[i % 3]:
            st.slider(LABELS[name], spec[1], spec[2], step=spec[3], format=spec[4], key=slider_key(name),
                      help=f"drawn: {spec[4] % slider_value(name, drawn[spec[0]])}")


def predict_image(loaded, image: np.ndarray) -> np.ndarray:
    """The model's decoded output for one raw image (probabilities, or a regression's physical value)."""
    from eqlens.checkpoint import predict

    with loaded.lock:
        return predict(loaded.model, loaded.card, torch.as_tensor(image)[None]).values[0].numpy()


def rendered(config_name: str, class_index: int, seed: int, changes: dict):
    """The edited lens: raw counts ``[H, W]``, its truth and the edited scene."""
    params = whatif_lib.edit_scene(drawn_scene(config_name, class_index, seed), **changes)
    from eqlens.data.regression import TARGETS

    batch = whatif_lib.render_scene(simulator(config_name), params, seed, [0])
    truth = batch.truth.for_image(0)
    targets = {task: float(target.from_truth(batch.truth)[0]) for task, target in TARGETS.items()}
    truth["targets"] = {task: v if math.isfinite(v) else None for task, v in targets.items()}
    return batch.images[0].numpy(), truth, params




def scene_rows(before: dict, after: dict) -> list[dict]:
    """The scene's parameters, drawn beside edited, masses in recipe units and physical Msun."""
    factor = float(after.get("physical_mass_factor") or 1.0)

    def row(what, unit, fn):
        a, b = fn(before), fn(after)
        return dict(parameter=f"{what} ({unit})" if unit else what, drawn=a, edited=b, changed="●" if a != b else "")

    def masses(what, fn):  # one row in recipe units, one in physical Msun
        return [row(what, "recipe Msun", lambda t: f"{fn(t):.3e}"),
                row(what, "physical Msun", lambda t: f"{fn(t) * factor:.3e}")]

    rows = [row("Einstein radius theta_E", "arcsec", lambda t: f"{t['theta_E']:.4f}"),
            *masses("main halo mass within theta_E", lambda t: (t["theta_E"] / t["unit_einstein_radius"]) ** 2),
            row("source R_sersic", "arcsec", lambda t: f"{t.get('source_R_sersic', float('nan')):.3f}"),
            row("source centre (x, y)", "arcsec",
                lambda t: f"({t['source_center'][0]:+.3f}, {t['source_center'][1]:+.3f})"),
            row("external shear |gamma|, angle", "deg",
                lambda t: f"{t.get('shear_modulus', 0):.3f}, {t.get('shear_angle_deg', 0):.0f}"),
            row("exposure", "s", lambda t: f"{t['exposure']:.0f}")]
    if after.get("subhalo_masses"):
        rows.append(row("subhalos: count", "", lambda t: str(len(t["subhalo_masses"]))))
        rows += masses("subhalo mass, total", lambda t: sum(t["subhalo_masses"]))
        rows += masses("subhalo mass, largest", lambda t: max(t["subhalo_masses"]))
    if after.get("vortex_endpoints"):
        rows.append(row("axion mass", "eV", lambda t: f"{t['axion_mass_ev']:.3e}"))
        rows.append(row("vortex length", "arcsec", lambda t: f"{math.dist(*t['vortex_endpoints']):.3f}"))
        rows += masses("vortex mass", lambda t: t["vortex_mass"])
    return rows


def probability_figure(names, values: np.ndarray, drawn_values: np.ndarray):
    """The class probabilities on the edited lens (bars) and on the drawn one (open markers)."""
    import plotly.graph_objects as go

    colors = list(figures.PALETTE[: len(names)])
    fig = go.Figure([go.Bar(x=list(names), y=values.tolist(), marker_color=colors, name="edited",
                            text=[f"{p:.4f}" for p in values], textposition="outside", cliponaxis=False),
                     go.Scatter(x=list(names), y=drawn_values.tolist(), mode="markers", name="drawn scene",
                                marker=dict(symbol="line-ew-open", size=34, color="white", line=dict(width=2)))])
    fig.update_layout(title="on the edited lens", height=320,
                      template="plotly_dark", margin=dict(l=50, r=10, t=50, b=40), showlegend=False,
                      yaxis=dict(range=[0, 1.15], title="probability"))
    return fig


def reading(loaded, values: np.ndarray, drawn_values: np.ndarray, truth: dict) -> None:
    """The model's probabilities on the edited lens (and what it said on the drawn one), beside the truth."""
    truth_class = truth["class_name"]
    if loaded.regression is not None:
        task = loaded.regression
        st.metric(f"predicted {task.name} ({task.unit})", f"{float(values):.5g}",
                  delta=f"{float(values) - float(drawn_values):+.4g} vs the drawn scene", delta_color="off")
        true = task.true_value(truth)
        st.caption(f"regression checkpoint; the edited scene's true {task.name}: "
                   + ("none (another class)" if true is None else f"{true:.5g} {task.unit}"))
        return
    names = loaded.class_names
    st.plotly_chart(probability_figure(names, values, drawn_values), key="whatif_probs", width="stretch", theme=None,
                    config=PLOT_CONFIG)
    st.caption("bars: the model on the edited lens; white lines: on the drawn scene")
    top, was = int(np.argmax(values)), int(np.argmax(drawn_values))
    with st.container(key="whatif_prediction"):
        st.markdown(f"**truth:** `{truth_class}` &nbsp; **prediction:** `{names[top]}` p = `{values[top]:.4f}`"
                    + (" ✗" if names[top] != truth_class else " ✓"))
        st.caption("on the drawn scene: " + ", ".join(f"{n} {p:.4f}" for n, p in zip(names, drawn_values, strict=True))
                   + (f"; the edit turned `{names[was]}` into `{names[top]}`" if top != was else ""))


@st.cache_resource(show_spinner=False, max_entries=2)
def simulator64(config_name: str):
    """The ideal observer's renderer: float64, as eqlens.analysis.detectability measures."""
    from eqlens.simulation import LensSimulator

    return LensSimulator(config_name, device="cpu", dtype=torch.float64)


def detectability_module():
    try:
        from eqlens.analysis import detectability
    except ImportError:  # the ideal observer ships separately; without it the page shows the model alone
        return None
    return detectability


def ideal_observer(loaded, config_name: str, class_index: int, seed: int, changes: dict) -> None:
    """The ideal observer's distance D beside the model: live, D_sub (the edited scene against itself without
    its substructure, one render); on request, the full search of the closest alternative scenes."""
    detect = detectability_module()
    if detect is None:
        return
    crop = loaded.crop
    edited = whatif_lib.edit_scene(drawn_scene(config_name, class_index, seed), **changes)
    sim = simulator64(config_name)
    where = f"over the disk of the central {crop} px" if crop else "over the whole frame's disk"
    if bool(edited.n_subhalos[0] > 0) or bool(~torch.isnan(edited.log10_axion_mass[0])):
        d = detect.lens_detectability(edited, config_name, crop=crop, alternatives=("sub",), simulator=sim).D_sub
        st.metric("ideal observer: D_sub", f"{d:.1f}", help="the whitened distance between the edited lens and the "
                  "same scene without its substructure, under the recipe's noise " + where + "; two fully known "
                  "scenes are told apart with error rate Phi(-D/2) (eqlens.analysis.detectability)")
    key = ("whatif_detect", config_name, class_index, seed, tuple(sorted(changes.items())), crop)
    if st.button("search the closest alternative scenes (about 20 s)", key="whatif_detect_search",
                 help="D against a smooth lens (source and theta_E free) and the closest axion scene (vortex angle, "
                      "axion mass, source, theta_E free): eqlens.analysis.detectability.lens_detectability"):
        with st.spinner("fitting the alternative scenes..."):
            st.session_state[key] = detect.lens_detectability(edited, config_name, crop=crop, simulator=sim)
    found = st.session_state.get(key)
    if found is not None:
        rows = [dict(alternative=name, D=round(getattr(found, f"D_{name}"), 2),
                     error_rate=f"{0.5 * math.erfc(getattr(found, f'D_{name}') / (2 * math.sqrt(2))):.2e}")
                for name in detect.ALTERNATIVES if math.isfinite(getattr(found, f"D_{name}"))]
        st.dataframe(rows, hide_index=True, width="stretch")
        st.caption(f"{found.renders} renders, {found.seconds:.1f} CPU s; error_rate = Phi(-D/2), the ideal "
                   "observer's between this scene and that alternative")


@st.fragment
def editor(loaded, config_name: str, class_index: int, seed: int) -> None:
    params = drawn_scene(config_name, class_index, seed)
    if st.session_state.get(LENS) != (config_name, class_index, seed):
        st.session_state[LENS] = (config_name, class_index, seed)
        reset(params)
    sliders(params)
    changes = changes_from(params)
    c1, c2 = st.columns([1.6, 5])
    c1.button("Reset to the drawn scene", key="whatif_reset", on_click=reset, args=(params,))
    c2.caption("edited: " + (", ".join(f"{k} = {v:.4g}" for k, v in changes.items()) if changes else "nothing yet")
               + ". The noise keeps the lens's own draws (seed, image 0): only the physics moves.")
    began = time.perf_counter()
    try:
        image, truth, _ = rendered(config_name, class_index, seed, changes)
    except whatif_lib.SceneEditError as err:
        st.error(str(err))
        return
    values = predict_image(loaded, image)
    seconds = time.perf_counter() - began
    drawn_key = (loaded.key, config_name, class_index, seed)
    if st.session_state.get(DRAWN, (None,))[0] != drawn_key:  # the drawn scene's reading, once per lens and model
        drawn_image, drawn_truth, _ = rendered(config_name, class_index, seed, {})
        st.session_state[DRAWN] = (drawn_key, drawn_truth, predict_image(loaded, drawn_image))
    _, drawn_truth, drawn_values = st.session_state[DRAWN]
    left, middle, right = st.columns([1.1, 0.9, 1.5])
    with left:
        st.plotly_chart(figures.lens_figure(image, "the edited lens", truth.get("pixel_scale"), truth,
                                            colorbar_label="log stretch"),
                        key="whatif_lens_fig", width="stretch", theme=None, config=PLOT_CONFIG)
        st.caption(f"simulated {config_name} / {truth['class_name']} / seed {seed}, edited; orange: the Einstein "
                   "ring, cyan: subhalos, pink: the vortex")
    with middle:
        reading(loaded, values, drawn_values, truth)
        ideal_observer(loaded, config_name, class_index, seed, changes)
    with right:
        st.dataframe(scene_rows(drawn_truth, truth), hide_index=True, width="stretch", key="whatif_scene",
                     column_config={"parameter": st.column_config.TextColumn(width="medium"),
                                    "changed": st.column_config.TextColumn("", width="small")})
        st.caption(f"Masses in recipe units (DeepLenseSim's Msun, luminosity distances) and physical Msun (x "
                   f"{float(truth['physical_mass_factor']):.3f}, angular-diameter distances: "
                   "eqlens.simulation.cosmology.physical_mass_factor). The main halo's mass is that inside theta_E.")
    with st.container(key="whatif_timing"):
        st.caption(f"rendered and read in {seconds * 1e3:.0f} ms on the server ("
                   + (", ".join(f"{k} {v:.5g}" for k, v in changes.items()) or "the drawn scene") + ")")


def arrive() -> None:
    """A lens sent by another page (the Gallery): set the choice before the widgets exist."""
    request = state.take_whatif_request()
    if request:
        config_name, class_index, seed = request
        st.session_state["whatif_config"] = config_name
        st.session_state[f"whatif_class_{config_name}"] = class_index
        st.session_state["whatif_seed"] = seed


arrive()
st.title("What if")
with st.sidebar:
    loaded = widgets.model_selector("whatif")
    config_name = st.selectbox("Simulation", CONFIGS, key="whatif_config")
    names = get_config(config_name).class_names
    class_index = st.selectbox("Class", range(len(names)), format_func=lambda i: names[i],
                               key=f"whatif_class_{config_name}")
    seed = st.number_input("Seed", min_value=0, max_value=10**6, value=0, step=1, key="whatif_seed")
st.caption("Drag a slider: the scene is rendered again with that change only (eqlens.simulation.whatif), with the "
           "same noise draws, and the model reads it. A model that learnt a shortcut shows it here: e.g. Model I "
           "fixes theta_E at 1.2815\", so a model trained on it alone may call a no_sub lens cdm when its ring moves "
           "by a percent.")
if loaded is None:
    st.info("Choose a model in the sidebar.")
elif tuple(loaded.class_names) != tuple(names) and loaded.regression is None:
    st.warning(f"{loaded.label} knows the classes {', '.join(loaded.class_names)}; {config_name} draws "
               f"{', '.join(names)}. Choose a model or a simulation that match.")
else:
    editor(loaded, config_name, int(class_index), int(seed))
