"""A simulated lens's scene, for the researcher: the Einstein radius, the source, every subhalo's position
and mass, the axion mass and its vortex, with the unit of every number. :func:`scene_rows` is plain data
(no st.*); :func:`scene_panel` draws it. The truth is ``LensTruth.for_image``'s record (arcsec, Msun, eV).

Masses are in *recipe units*: Msun as DeepLenseSim's recipe uses them, whose Einstein radii are
evaluated with luminosity distances (docs/simulator.md), so theta_E(M) = theta_E(1 Msun) sqrt(M) with
the recipe's theta_E(1 Msun); a textbook (angular-diameter) reading of the same radius is another mass.
"""

from __future__ import annotations

import math

import streamlit as st

MASS_UNIT = "Msun (recipe units)"


def _config(config_name: str | None):
    from eqlens.simulation import config_names, get_config

    return get_config(config_name) if config_name in config_names() else None


def mass_note(config_name: str | None) -> str:
    """One paragraph on the unit of every mass shown (with the config's own theta_E of 1e12 Msun)."""
    from eqlens.simulation.sampling import unit_einstein_radius

    config = _config(config_name)
    radius = (f"theta_E(M) = {unit_einstein_radius(config) * 1e6:.4f}\" x sqrt(M / 1e12 Msun)" if config
              else "theta_E(M) ~ sqrt(M)")
    return ("Masses in **recipe units**: Msun as DeepLenseSim's recipe uses them, whose Einstein radii are "
            f"evaluated with *luminosity* distances (D_ls = D_s - D_l), so a mass M lenses like {radius}; read with "
            "angular-diameter distances, the same radius would be a different mass (docs/simulator.md). Positions "
            "in arcsec from the frame's centre, x along columns, y along rows.")


def scene_rows(truth: dict, config_name: str | None = None) -> tuple[list[dict], list[dict]]:
    """The scene's parameters as ``{"what", "value", "unit"}`` rows, and one row per subhalo (position,
    distance from the centre, mass, log mass and, for a known config, its own Einstein radius)."""
    from eqlens.simulation.sampling import unit_einstein_radius

    config = _config(config_name)
    unit_radius = unit_einstein_radius(config) if config else None  # arcsec of 1 Msun, the recipe's convention
    rows = [dict(what="class", value=str(truth.get("class_name", "")), unit="")]
    if truth.get("theta_E") is not None:
        rows.append(dict(what="Einstein radius of the main lens", value=f"{truth['theta_E']:.4f}", unit="arcsec"))
    if config is not None and config.theta_E is None and config.theta_E_range is None:
        rows.append(dict(what="main halo mass (sets that radius)", value=f"{config.halo_mass:.3g}", unit=MASS_UNIT))
    if truth.get("source_center"):
        x, y = truth["source_center"]
        rows.append(dict(what="source centre (x, y)", value=f"({x:+.3f}, {y:+.3f})", unit="arcsec"))
    masses = list(truth.get("subhalo_masses") or [])
    if masses:
        rows.append(dict(what="subhalos: count, total mass", value=f"{len(masses)}, {sum(masses):.3e}", unit=MASS_UNIT))
    if truth.get("axion_mass_ev") is not None:
        value = f"{truth['axion_mass_ev']:.3e} (log10 {truth['log10_axion_mass']:.3f})"
        rows.append(dict(what="axion mass", value=value, unit="eV"))
    if truth.get("vortex_endpoints"):
        (x0, y0), (x1, y1) = truth["vortex_endpoints"]
        rows.append(dict(what="vortex line, end to end", value=f"({x0:+.3f}, {y0:+.3f}) to ({x1:+.3f}, {y1:+.3f}), "
                                                                f"length {math.hypot(x1 - x0, y1 - y0):.3f}",
                         unit="arcsec"))
        if config is not None:
            rows.append(dict(what="vortex mass (spread along the line)", value=f"{config.vortex_mass:.3g}",
                             unit=MASS_UNIT))
    if truth.get("exposure") is not None:
        rows.append(dict(what="exposure time", value=f"{truth['exposure']:.0f}", unit="s"))
    subhalos = []
    for (x, y), m in zip(truth.get("subhalo_positions") or [], masses, strict=False):
        row = {"x (arcsec)": round(x, 4), "y (arcsec)": round(y, 4), "r (arcsec)": round(math.hypot(x, y), 4),
               f"mass ({MASS_UNIT})": f"{m:.3e}", "log10 mass": round(math.log10(m), 3)}
        if unit_radius is not None:
            row["its Einstein radius (arcsec)"] = round(unit_radius * math.sqrt(m), 5)
        subhalos.append(row)
    return rows, subhalos


def scene_panel(truth: dict, config_name: str | None = None) -> None:
    """The scene's parameters, its subhalos (heaviest first) and the mass-unit note."""
    if not truth:
        st.info("Not a simulated image: no scene parameters to show.")
        return
    rows, subhalos = scene_rows(truth, config_name)
    st.dataframe(rows, hide_index=True, width="stretch")
    if subhalos:
        subhalos.sort(key=lambda row: -row["log10 mass"])
        st.dataframe(subhalos, hide_index=True, width="stretch", height=min(36 * (len(subhalos) + 1), 300))
    st.caption(mass_note(config_name))
