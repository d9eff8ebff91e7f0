"""Flat Lambda-CDM distances and point-mass Einstein radii (no astropy needed at run time).

The DeepLense Model I recipe sets the main SIE's theta_E to the point-mass Einstein radius of a
1e12 Msun halo, theta_E = sqrt(4 G M / c**2 * D_ls / (D_l D_s)), but evaluates it with
*luminosity* distances and D_ls = D_s - D_l (DeepLenseSim ``mass_to_radius``). That gives 1.28"
at z_l 0.5, z_s 1.0, H0 70, Om0 0.3 (angular-diameter distances would give 1.66"). To reproduce the
data we follow the recipe (``convention="deeplense"``); ``convention="angular"`` is the textbook one.
Subhalo and vortex Einstein radii use the same convention, so theta_E(M) = theta_E(1e12) sqrt(M / 1e12).
"""

from __future__ import annotations

import functools
import math

import numpy as np

C_KM_S = 299_792.458
G_SI = 6.67430e-11
C_SI = 299_792_458.0
M_SUN_KG = 1.988409870698051e30  # IAU 2015 nominal solar mass parameter / G (astropy's M_sun)
MPC_M = 3.085677581491367e22
ARCSEC_PER_RAD = 180.0 / math.pi * 3600.0


def comoving_distance_mpc(z: float, H0: float = 70.0, Om0: float = 0.3) -> float:
    """Line-of-sight comoving distance (Mpc) in flat LCDM without radiation (Gauss-Legendre, 64 nodes)."""
    if z <= 0:
        return 0.0
    nodes, weights = np.polynomial.legendre.leggauss(64)
    zz = 0.5 * z * (nodes + 1.0)
    inv_e = 1.0 / np.sqrt(Om0 * (1.0 + zz) ** 3 + (1.0 - Om0))
    return float(C_KM_S / H0 * 0.5 * z * np.dot(weights, inv_e))


@functools.lru_cache(maxsize=256)
def einstein_radius_arcsec(
    mass_msun: float,
    z_lens: float,
    z_source: float,
    H0: float = 70.0,
    Om0: float = 0.3,
    convention: str = "deeplense",
) -> float:
    """Point-mass Einstein radius (arcsec) of ``mass_msun``; see the module notes for ``convention``."""
    if z_source <= z_lens:
        raise ValueError(f"the source (z={z_source}) must lie behind the lens (z={z_lens})")
    chi_l = comoving_distance_mpc(z_lens, H0, Om0)
    chi_s = comoving_distance_mpc(z_source, H0, Om0)
    if convention == "deeplense":
        d_l, d_s = (1 + z_lens) * chi_l, (1 + z_source) * chi_s
        d_ls = d_s - d_l
    elif convention == "angular":
        d_l, d_s = chi_l / (1 + z_lens), chi_s / (1 + z_source)
        d_ls = (chi_s - chi_l) / (1 + z_source)
    else:
        raise ValueError(f"unknown distance convention {convention!r}: use 'deeplense' or 'angular'")
    theta2 = 4 * G_SI * mass_msun * M_SUN_KG / C_SI**2 * d_ls / (d_l * d_s * MPC_M)
    return math.sqrt(theta2) * ARCSEC_PER_RAD


@functools.lru_cache(maxsize=64)
def physical_mass_factor(z_lens: float, z_source: float, H0: float = 70.0, Om0: float = 0.3,
                         convention: str = "deeplense") -> float:
    """Physical Msun per recipe-unit Msun: a mass ``M`` of the ``convention`` bends light as a point mass of
    ``M * factor`` Msun does with angular-diameter distances (the same Einstein radius), so
    ``factor = (theta_E(1 Msun; convention) / theta_E(1 Msun; angular))**2``: 0.593 for Model I (z 0.5 -> 1.0,
    H0 70, Om0 0.3), 1 for ``"angular"``. A recipe "1e12 Msun halo" is the SIE whose mass inside its Einstein
    radius is 1e12 recipe units, 5.93e11 physical Msun."""
    recipe = einstein_radius_arcsec(1.0, z_lens, z_source, H0, Om0, convention)
    physical = einstein_radius_arcsec(1.0, z_lens, z_source, H0, Om0, "angular")
    return (recipe / physical) ** 2


def angular_diameter_distance_mpc(z: float, H0: float = 70.0, Om0: float = 0.3) -> float:
    """Angular-diameter distance (Mpc) in flat LCDM: comoving distance / (1 + z)."""
    return comoving_distance_mpc(z, H0, Om0) / (1 + z)


def critical_density_msun_mpc3(z: float, H0: float = 70.0, Om0: float = 0.3) -> float:
    """rho_crit(z) = 3 H(z)^2 / (8 pi G) in Msun / Mpc^3 (flat LCDM without radiation)."""
    hubble_si = H0 * 1000.0 / MPC_M * math.sqrt(Om0 * (1 + z) ** 3 + 1 - Om0)
    return 3 * hubble_si**2 / (8 * math.pi * G_SI) * MPC_M**3 / M_SUN_KG


def nfw_scale_radius_arcsec(mass_msun, z: float, H0: float = 70.0, Om0: float = 0.3):
    """NFW scale radius Rs = r200 / c200 (arcsec, seen from redshift ``z``) of an M200c halo of ``mass_msun``
    (a float or a tensor: elementwise arithmetic only), with the concentration of Duffy et al. 2008 (MNRAS 390,
    L64; NFW, M200c, full sample) c200 = 5.71 (M / 2e12 h^-1 Msun)^-0.084 (1 + z)^-0.47, extrapolated below
    their 1e11 Msun (it gives c ~ 11 at 1e8 Msun, z 0.5), and r200 = (3 M / (800 pi rho_crit(z)))^(1/3).
    A size: evaluated with the textbook angular-diameter distance whatever the Einstein-radius convention."""
    h = H0 / 100.0
    concentration = 5.71 * (mass_msun / (2e12 / h)) ** -0.084 * (1 + z) ** -0.47
    r200_mpc = (3 * mass_msun / (800 * math.pi * critical_density_msun_mpc3(z, H0, Om0))) ** (1 / 3)
    return r200_mpc / concentration / angular_diameter_distance_mpc(z, H0, Om0) * ARCSEC_PER_RAD
