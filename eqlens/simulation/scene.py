"""A simulated lens's scene as a reader wants it: named parameters with their units, and one row per subhalo.

Reads the plain dict of :meth:`LensTruth.for_image` (JSON-ready), so the app, the CLI and a saved
truth record all describe a scene the same way.

Masses are in "recipe units": solar masses as DeepLenseSim turns them into Einstein radii, with
*luminosity* distances and ``D_ls = D_s - D_l`` (``distance_convention="deeplense"``, see
docs/simulator.md). A 1e12 Msun halo then has theta_E = 1.2815" at z_l 0.5, z_s 1.0, where
angular-diameter distances would give 1.66"; the same theta_E belongs to a different textbook mass.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

MASS_UNIT = "Msun (recipe units)"
MASS_UNIT_NOTE = ("masses in recipe units: solar masses as DeepLenseSim converts them to Einstein radii, with "
                  "luminosity distances (a 1e12 Msun halo has theta_E = 1.2815\" at z 0.5 -> 1.0, where "
                  "angular-diameter distances give 1.66\")")


def scene_parameters(truth: Mapping) -> list[dict]:
    """``[{"parameter", "value", "unit"}]`` for one lens: class, Einstein radius, source centre,
    subhalo count and total mass, axion mass and vortex length (axion lenses), exposure, pixel scale."""
    rows = [dict(parameter="class", value=truth.get("class_name"), unit="")]

    def add(name, value, unit):
        if value is not None and not (isinstance(value, float) and math.isnan(value)):
            rows.append(dict(parameter=name, value=value, unit=unit))

    add("Einstein radius theta_E (main lens)", _num(truth.get("theta_E")), "arcsec")
    centre = truth.get("source_center")
    if centre is not None:
        add("source centre (x, y)", f"({float(centre[0]):+.3f}, {float(centre[1]):+.3f})", "arcsec")
    masses = list(truth.get("subhalo_masses") or [])
    add("subhalos", len(masses), "")
    if masses:
        add("subhalo mass, total", float(sum(masses)), MASS_UNIT)
        add("subhalo mass, largest", float(max(masses)), MASS_UNIT)
    add("axion mass m_a", _num(truth.get("axion_mass_ev")), "eV")
    add("log10(m_a / eV)", _num(truth.get("log10_axion_mass")), "")
    ends = truth.get("vortex_endpoints")
    if ends:
        length = math.dist(ends[0], ends[1])
        add("vortex length", length, "arcsec")
    add("exposure", _num(truth.get("exposure")), "s (arbitrary, as DeepLense)")
    add("pixel scale", _num(truth.get("pixel_scale")), "arcsec/px")
    return rows


def subhalo_rows(truth: Mapping) -> list[dict]:
    """One row per subhalo: position ``x, y`` (arcsec from the lens centre, the simulator's sky
    grid), radius ``r`` (arcsec) and ``mass`` (recipe units, :data:`MASS_UNIT`), heaviest first."""
    positions = truth.get("subhalo_positions") or []
    masses = truth.get("subhalo_masses") or []
    rows = [dict(x_arcsec=float(p[0]), y_arcsec=float(p[1]), r_arcsec=math.hypot(float(p[0]), float(p[1])),
                 mass_msun=float(m)) for p, m in zip(positions, masses, strict=True)]
    return sorted(rows, key=lambda r: -r["mass_msun"])


def _num(value):
    return None if value is None else float(value)
