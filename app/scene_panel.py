"""A simulated lens's scene, laid out for the researcher: the rows of :mod:`eqlens.simulation.scene` (every
parameter with its unit, masses in recipe units and physical Msun) and one row per subhalo, heaviest first.
The rows and the units have one owner, the package; this module only draws them."""

from __future__ import annotations

import streamlit as st

from eqlens.simulation import scene


def _shown(value) -> str:
    return value if isinstance(value, str) else f"{value:.4g}"


def scene_tables(truth: dict, *, subhalo_height: int = 320) -> None:
    """The scene's parameters and its subhalos side by side, and the mass-unit note."""
    params = scene.scene_parameters(truth)
    subhalos = scene.subhalo_rows(truth)
    left, right = st.columns([1, 1.2])
    left.dataframe([{"parameter": r["parameter"], "value": _shown(r["value"]), "unit": r["unit"]} for r in params],
                   hide_index=True, width="stretch",
                   column_config={"parameter": st.column_config.TextColumn(width="medium"),
                                  "value": st.column_config.TextColumn(width="small"),
                                  "unit": st.column_config.TextColumn(width="medium")})
    if subhalos:
        number = st.column_config.NumberColumn
        right.dataframe(subhalos, hide_index=True, width="stretch", height=subhalo_height,
                        column_config={"x_arcsec": number("x (arcsec)", format="%.3f"),
                                       "y_arcsec": number("y (arcsec)", format="%.3f"),
                                       "r_arcsec": number("r (arcsec)", format="%.3f"),
                                       "mass_msun": number(f"mass, {scene.MASS_UNIT}", format="%.3e"),
                                       "mass_physical_msun": number(f"mass, {scene.PHYSICAL_MASS_UNIT}",
                                                                    format="%.3e"),
                                       "theta_E_arcsec": number("its theta_E (arcsec)", format="%.4f")})
    st.caption(scene.mass_note(truth) + " Sky y grows with the row index (row 0 on top, as DeepLense shows it).")


def scene_panel(truth: dict) -> None:
    """The scene's tables, or a word that the image has none (not simulated)."""
    if not truth:
        st.info("Not a simulated image: no scene parameters to show.")
        return
    scene_tables(truth)
