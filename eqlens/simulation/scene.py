"""A simulated lens's scene as a reader wants it: named parameters with their units, and one row per subhalo.

Reads the plain dict of :meth:`LensTruth.for_image` (JSON-ready), so the app, the CLI and a saved
truth record all describe a scene the same way. This module is the one owner of those rows and of the
mass units: the app's scene panels (Explore, Misclassified) only lay them out.

Masses come in two units. **Recipe units** ("Msun (recipe units)") are solar masses as DeepLenseSim turns
them into Einstein radii, with *luminosity* distances and ``D_ls = D_s - D_l``
(``distance_convention="deeplense"``, docs/simulator.md): theta_E(M) = theta_E(1e12) sqrt(M / 1e12), with
theta_E(1e12) = 1.2815" at z_l 0.5, z_s 1.0. **Physical Msun** are the masses that bend light the same way
with angular-diameter distances: recipe units times :func:`.cosmology.physical_mass_factor` (0.593 for Model
I). A recipe "1e12 Msun halo" is the SIE whose mass inside its Einstein radius is 1e12 recipe units
(5.93e11 physical Msun); a point mass and an SIE of the same theta_E enclose the same mass within it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

MASS_UNIT = "Msun (recipe units)"
PHYSICAL_MASS_UNIT = "Msun (physical)"
MASS_UNIT_NOTE = ("masses in recipe units (Msun as DeepLenseSim converts them to Einstein radii, with luminosity "
                  "distances: a 1e12 Msun halo, the mass inside theta_E, has theta_E = 1.2815\" at z 0.5 -> 1.0) and "
                  "in physical Msun (the mass with the same Einstein radius under angular-diameter distances: "
                  "recipe units x 0.593 for Model I)")


def mass_note(truth: Mapping) -> str:
    """One sentence on the two mass units of this lens's scene, with its own conversion factor and radius."""
    factor = truth.get("physical_mass_factor")
    unit_radius = truth.get("unit_einstein_radius")
    if factor is None or unit_radius is None:
        return MASS_UNIT_NOTE
    return (f"Masses in recipe units (Msun as DeepLenseSim converts them to Einstein radii, with luminosity distances: "
            f"theta_E(M) = {unit_radius * 1e6:.4f}\" x sqrt(M / 1e12)) and in physical Msun (the same Einstein radius "
            f"under angular-diameter distances: recipe units x {factor:.3f}). A main-lens mass is the mass inside "
            f"its Einstein radius.")


def mass_inside_einstein_radius(truth: Mapping) -> float | None:
    """The main lens's mass inside its Einstein radius (recipe units), ``(theta_E / theta_E(1 Msun))**2``:
    1e12 for Model I's fixed lens; None without the unit radius."""
    unit_radius = truth.get("unit_einstein_radius")
    if unit_radius is None or truth.get("theta_E") is None:
        return None
    return (float(truth["theta_E"]) / float(unit_radius)) ** 2


def _physical(truth: Mapping, mass: float) -> float | None:
    factor = truth.get("physical_mass_factor")
    return None if factor is None else float(mass) * float(factor)


def scene_parameters(truth: Mapping) -> list[dict]:
    """``[{"parameter", "value", "unit"}]`` for one lens: class, the main lens (Einstein radius, its mass in
    both units, axis ratio and position angle), external shear, the source (centre, Sersic radius and index,
    ellipticity), the subhalos (count, total and largest mass in both units), the axion and its vortex (mass,
    length, the vortex's mass), the instrument (exposure, PSF FWHM, pixel scale). Position angles in deg,
    counter-clockwise from +x on the sky grid. A value absent from the truth (e.g. a record written before the
    shapes were recorded) is left out, never guessed."""
    rows = [dict(parameter="class", value=truth.get("class_name"), unit="")]

    def add(name, value, unit):
        if value is not None and not (isinstance(value, float) and math.isnan(value)):
            rows.append(dict(parameter=name, value=value, unit=unit))

    def add_mass(name, mass):
        add(name, mass, MASS_UNIT)
        if mass is not None:
            add(f"{name} (physical)", _physical(truth, mass), PHYSICAL_MASS_UNIT)

    add("Einstein radius theta_E (main lens)", _num(truth.get("theta_E")), "arcsec")
    add_mass("main-lens mass inside theta_E", mass_inside_einstein_radius(truth))
    add("lens axis ratio q", _num(truth.get("lens_axis_ratio")), "")
    add("lens position angle", _num(truth.get("lens_angle_deg")), "deg")
    add("external shear |gamma|", _num(truth.get("shear_modulus")), "")
    add("shear angle", _num(truth.get("shear_angle_deg")), "deg")
    centre = truth.get("source_center")
    if centre is not None:
        add("source centre (x, y)", f"({float(centre[0]):+.3f}, {float(centre[1]):+.3f})", "arcsec")
    add("source Sersic radius R_sersic", _num(truth.get("source_R_sersic")), "arcsec")
    add("source Sersic index n", _num(truth.get("source_n_sersic")), "")
    add("source ellipticity |e|", _num(truth.get("source_ellipticity")), "")
    masses = list(truth.get("subhalo_masses") or [])
    add("subhalos", len(masses), "")
    if masses:
        add_mass("subhalo mass, total", float(sum(masses)))
        add_mass("subhalo mass, largest", float(max(masses)))
    add("axion mass m_a", _num(truth.get("axion_mass_ev")), "eV")
    add("log10(m_a / eV)", _num(truth.get("log10_axion_mass")), "")
    ends = truth.get("vortex_endpoints")
    if ends:
        add("vortex length", math.dist(ends[0], ends[1]), "arcsec")
        add_mass("vortex mass (spread along the line)", _num(truth.get("vortex_mass")))
    add("exposure", _num(truth.get("exposure")), "s (arbitrary, as DeepLense)")
    add("PSF FWHM", _num(truth.get("psf_fwhm")), "arcsec")
    add("pixel scale", _num(truth.get("pixel_scale")), "arcsec/px")
    return rows


def subhalo_rows(truth: Mapping) -> list[dict]:
    """One row per subhalo, heaviest first: position ``x, y`` (arcsec from the lens centre, the simulator's
    sky grid), radius ``r`` (arcsec), ``mass_msun`` (recipe units, :data:`MASS_UNIT`), ``mass_physical_msun``
    (:data:`PHYSICAL_MASS_UNIT`, None when the truth has no conversion factor) and ``theta_E_arcsec``, its
    point-mass Einstein radius (None without the unit radius)."""
    positions = truth.get("subhalo_positions") or []
    masses = truth.get("subhalo_masses") or []
    unit_radius = truth.get("unit_einstein_radius")
    rows = [dict(x_arcsec=float(p[0]), y_arcsec=float(p[1]), r_arcsec=math.hypot(float(p[0]), float(p[1])),
                 mass_msun=float(m), mass_physical_msun=_physical(truth, m),
                 theta_E_arcsec=None if unit_radius is None else float(unit_radius) * math.sqrt(float(m)))
            for p, m in zip(positions, masses, strict=True)]
    return sorted(rows, key=lambda r: -r["mass_msun"])


def _num(value):
    return None if value is None else float(value)
