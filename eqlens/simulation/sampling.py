"""Per-image scene parameters drawn from the config's priors with the counter-based RNG.

Every random quantity has a fixed (stream, slot) in :mod:`eqlens.simulation.rng`, independent of the
class: images with the same (seed, index) but different labels share their lens, source and
instrument, and differ only by the substructure. Parameters are drawn in float64 (cheap: ~100 numbers
per image) so float32 and float64 renderings describe the same scene.

Stream slots: lens 0 theta_E, 1 |e| (or the axis ratio q), 2 phi, 3 |gamma|, 4 shear angle; source 0-1
centre, 2 R_sersic, 3 n_sersic, 4 |e|, 5 its angle; instrument 0 exposure, 1 PSF FWHM, 2 background rms;
subhalos [0, n) mass, [n, 2n) radius, [2n, 3n) angle with n = ``n_subhalos`` (a fixed count) or
``max_subhalos`` (a Poisson count, drawn from slot 3n); vortex 0 log10 axion mass, 1 angle. The slots are
counter-based, so a config that draws more of them leaves the others' values unchanged.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import torch

from . import rng
from .configs import SUBSTRUCTURE, SimulationConfig
from .cosmology import einstein_radius_arcsec

# (x, y) field pairs of a scene and their spin under a turn of the sky: positions turn with the angle,
# ellipticities and shear (spin 2) with twice it.
_SPIN_PAIRS = (("lens_center_x", "lens_center_y", 1), ("source_center_x", "source_center_y", 1),
               ("vortex_center_x", "vortex_center_y", 1), ("subhalo_x", "subhalo_y", 1),
               ("lens_e1", "lens_e2", 2), ("source_e1", "source_e2", 2), ("gamma1", "gamma2", 2))


@dataclass
class LensParameters:
    """One batch of scenes; every field is a tensor with the batch first (``[B]`` or ``[B, n_sub]``).

    Absent substructure is encoded so that it deflects nothing: subhalo slots beyond ``n_subhalos``
    and the vortex of a non-axion image have theta_E = 0 (and the vortex half-length 1").
    """

    labels: torch.Tensor  # [B] int64
    theta_E: torch.Tensor
    lens_e1: torch.Tensor
    lens_e2: torch.Tensor
    lens_center_x: torch.Tensor
    lens_center_y: torch.Tensor
    gamma1: torch.Tensor
    gamma2: torch.Tensor
    source_amp: torch.Tensor
    source_R_sersic: torch.Tensor
    source_n_sersic: torch.Tensor
    source_e1: torch.Tensor
    source_e2: torch.Tensor
    source_center_x: torch.Tensor
    source_center_y: torch.Tensor
    subhalo_x: torch.Tensor  # [B, n_sub]
    subhalo_y: torch.Tensor  # [B, n_sub]
    subhalo_mass: torch.Tensor  # [B, n_sub] Msun
    subhalo_theta_E: torch.Tensor  # [B, n_sub]
    n_subhalos: torch.Tensor  # [B] int64
    vortex_center_x: torch.Tensor
    vortex_center_y: torch.Tensor
    vortex_angle: torch.Tensor
    vortex_half_length: torch.Tensor
    vortex_theta_E: torch.Tensor  # Einstein radius of the whole line mass
    log10_axion_mass: torch.Tensor  # NaN without a vortex
    exposure: torch.Tensor
    background_rms: torch.Tensor
    psf_fwhm: torch.Tensor

    @property
    def batch_size(self) -> int:
        return int(self.labels.shape[0])

    def replace(self, **changes) -> LensParameters:
        return dataclasses.replace(self, **changes)

    def to(self, device=None, dtype=None) -> LensParameters:
        """Floating fields to ``dtype`` (integer fields keep theirs), all to ``device``."""
        out = {}
        for f in dataclasses.fields(self):
            t = getattr(self, f.name)
            out[f.name] = t.to(device=device, dtype=dtype if t.is_floating_point() else None)
        return LensParameters(**out)

    def select(self, rows) -> LensParameters:
        """The scenes at ``rows`` (an index tensor/list or slice)."""
        return LensParameters(**{f.name: getattr(self, f.name)[rows] for f in dataclasses.fields(self)})

    def rotated90(self, k: int = 1) -> LensParameters:
        """The scene whose image is ``torch.rot90(image, k, dims=(-2, -1))`` of this one's.

        With the array rows growing with y (see :mod:`eqlens.simulation.instrument`) that is the sky
        turned by -k * 90 deg: each centre (x, y) -> (y, -x) per quarter turn, position angles -90 deg,
        spin-2 quantities (e1, e2) and (gamma1, gamma2) change sign. Centres move exactly (no trig)."""
        p = self
        for _ in range(k % 4):
            p = p.replace(
                lens_center_x=p.lens_center_y, lens_center_y=-p.lens_center_x,
                source_center_x=p.source_center_y, source_center_y=-p.source_center_x,
                subhalo_x=p.subhalo_y, subhalo_y=-p.subhalo_x,
                vortex_center_x=p.vortex_center_y, vortex_center_y=-p.vortex_center_x,
                vortex_angle=p.vortex_angle - math.pi / 2,
                lens_e1=-p.lens_e1, lens_e2=-p.lens_e2, source_e1=-p.source_e1, source_e2=-p.source_e2,
                gamma1=-p.gamma1, gamma2=-p.gamma2,
            )  # fmt: skip
        return p

    def turned(self, angle_deg: float | torch.Tensor) -> LensParameters:
        """The scene whose image is this one's turned counter-clockwise by ``angle_deg`` (a float, or
        ``[B]``: one angle per scene), as :func:`eqlens.groups.rotate` turns pictures.

        The sky turns by ``phi = -angle`` (the array rows grow with y, see :meth:`rotated90`, which
        this equals at multiples of 90 deg up to rounding): positions by ``phi``, spin-2 quantities
        (ellipticities e1, e2 and shear gamma1, gamma2) by ``2 phi``, the vortex line's direction by
        ``phi``. Radii, masses, the (circular) PSF and the exposure do not change. Rendering the
        turned scene gives the instrument's own pixel grid and noise at every angle: no resampling."""
        phi = -torch.deg2rad(torch.as_tensor(angle_deg, dtype=torch.float64)).to(self.labels.device)
        if phi.dim() > 1 or (phi.dim() == 1 and phi.shape[0] != self.batch_size):
            raise ValueError(f"need one angle or one per scene ({self.batch_size}), got {tuple(phi.shape)}")

        def turn(x: torch.Tensor, y: torch.Tensor, spin: int) -> tuple[torch.Tensor, torch.Tensor]:
            a = spin * (phi.reshape(-1, *([1] * (x.dim() - 1))) if phi.dim() else phi)
            c, s = torch.cos(a).to(x.dtype), torch.sin(a).to(x.dtype)
            return c * x - s * y, s * x + c * y

        changes = {"vortex_angle": self.vortex_angle + phi.to(self.vortex_angle.dtype)}
        for first, second, spin in _SPIN_PAIRS:
            changes[first], changes[second] = turn(getattr(self, first), getattr(self, second), spin)
        return self.replace(**changes)


def resolve_labels(labels, indices: torch.Tensor, num_classes: int) -> torch.Tensor:
    """``None`` -> ``index % num_classes``; otherwise the given class indices, checked."""
    if labels is None:
        return indices % num_classes
    labels = torch.as_tensor(labels, dtype=torch.int64, device=indices.device).reshape(-1)
    if labels.shape != indices.shape:
        raise ValueError(f"{labels.numel()} labels for {indices.numel()} indices")
    if bool(((labels < 0) | (labels >= num_classes)).any()):
        raise ValueError(f"labels must lie in [0, {num_classes})")
    return labels


def _between(u: torch.Tensor, lo: float, hi: float) -> torch.Tensor:
    return lo + (hi - lo) * u


def _choose(u: torch.Tensor, value_range, fixed: float) -> torch.Tensor:
    return torch.full_like(u, fixed) if value_range is None else _between(u, *value_range)


def unit_einstein_radius(config: SimulationConfig) -> float:
    """Einstein radius (arcsec) of 1 Msun in the config's cosmology; theta_E(M) = this * sqrt(M)."""
    c = config
    return einstein_radius_arcsec(1.0, c.z_lens, c.z_source, c.H0, c.Om0, c.distance_convention)


def main_lens_theta_E(config: SimulationConfig) -> float:
    """The SIE's fixed Einstein radius: ``config.theta_E`` or that of ``config.halo_mass``."""
    return config.theta_E if config.theta_E is not None else unit_einstein_radius(config) * math.sqrt(config.halo_mass)


def sample_parameters(config: SimulationConfig, seed: int, indices, labels=None, device="cpu") -> LensParameters:
    """Draw the scenes of images ``indices`` (float64 on ``device``); see the module notes for the slots."""
    idx = torch.as_tensor(indices, dtype=torch.int64, device=device).reshape(-1)
    labels = resolve_labels(labels, idx, config.num_classes)
    b = idx.shape[0]
    f64 = torch.float64

    def draw(stream: str, n: int) -> torch.Tensor:
        return rng.uniform(rng.image_keys(seed, idx, rng.STREAMS[stream]), n, f64)

    lens, src, inst = draw("lens", 5), draw("source", 6), draw("instrument", 3)
    zeros = torch.zeros(b, dtype=f64, device=device)

    # main lens: e = |e| (cos 2 phi, sin 2 phi); the fixed recipe is kept exactly when no range is set
    fixed_modulus = config.lens_ellipticity_range is None and config.lens_axis_ratio_range is None
    if fixed_modulus and config.lens_orientation_range is None:
        e1, e2 = zeros + config.lens_e1, zeros + config.lens_e2
    else:
        if config.lens_axis_ratio_range is not None:
            q = _between(lens[:, 1], *config.lens_axis_ratio_range)
            modulus = (1 - q) / (1 + q)
        else:
            modulus = _choose(lens[:, 1], config.lens_ellipticity_range, math.hypot(config.lens_e1, config.lens_e2))
        phi = _choose(lens[:, 2], config.lens_orientation_range, 0.5 * math.atan2(config.lens_e2, config.lens_e1))
        e1, e2 = modulus * torch.cos(2 * phi), modulus * torch.sin(2 * phi)
    if config.shear_range is None:
        g1, g2 = zeros + config.gamma1, zeros + config.gamma2
    else:
        gamma, shear_angle = _between(lens[:, 3], *config.shear_range), lens[:, 4] * math.pi
        g1, g2 = gamma * torch.cos(2 * shear_angle), gamma * torch.sin(2 * shear_angle)

    w = config.source_center_half_width
    position_range = config.source_position_range or (-w, w)
    kinds = [SUBSTRUCTURE[c] for c in config.class_names]
    has_subhalos = torch.tensor([k == "subhalos" for k in kinds], device=device)[labels]
    has_vortex = torch.tensor([k == "vortex" for k in kinds], device=device)[labels]

    subhalos = _sample_subhalos(config, draw("subhalos", 3 * subhalo_slots(config) + 1), has_subhalos)
    if config.source_ellipticity_range is None:
        se1, se2 = zeros + config.source_e1, zeros + config.source_e2
    else:
        source_modulus, source_angle = _between(src[:, 4], *config.source_ellipticity_range), src[:, 5] * math.pi
        se1, se2 = source_modulus * torch.cos(2 * source_angle), source_modulus * torch.sin(2 * source_angle)
    vortex = _sample_vortex(config, draw("vortex", 2), has_vortex)

    return LensParameters(
        labels=labels,
        theta_E=_choose(lens[:, 0], config.theta_E_range, main_lens_theta_E(config)),
        lens_e1=e1,
        lens_e2=e2,
        lens_center_x=zeros.clone(),
        lens_center_y=zeros.clone(),
        gamma1=g1,
        gamma2=g2,
        source_amp=zeros + config.source_amp,
        source_R_sersic=_choose(src[:, 2], config.source_R_sersic_range, config.source_R_sersic),
        source_n_sersic=_choose(src[:, 3], config.source_n_sersic_range, config.source_n_sersic),
        source_e1=se1,
        source_e2=se2,
        source_center_x=_between(src[:, 0], *position_range),
        source_center_y=_between(src[:, 1], *position_range),
        **subhalos,
        **vortex,
        exposure=10.0 ** _between(inst[:, 0], *config.log10_exposure_range),
        psf_fwhm=_choose(inst[:, 1], config.psf_fwhm_range, config.psf_fwhm),
        background_rms=_choose(inst[:, 2], config.background_rms_range, config.background_rms),
    )


def subhalo_slots(config: SimulationConfig) -> int:
    """Subhalo slots of a scene: the fixed count, or the cap of a Poisson count."""
    return config.max_subhalos if config.subhalo_count == "poisson" else config.n_subhalos


def poisson_count(u: torch.Tensor, mean: float, cap: int) -> torch.Tensor:
    """Poisson(``mean``) counts by the inverse CDF of uniforms ``u [B]`` (float64), capped at ``cap``: ``[B]`` int64."""
    k = torch.arange(cap + 1, dtype=torch.float64, device=u.device)
    log_pmf = k * math.log(mean) - mean - torch.lgamma(k + 1) if mean > 0 else torch.where(k == 0, 0.0, -math.inf)
    cdf = torch.cumsum(torch.exp(log_pmf), 0)
    return torch.searchsorted(cdf, u.contiguous(), right=True).clamp(max=cap).to(torch.int64)


def _sample_subhalos(config: SimulationConfig, u: torch.Tensor, present: torch.Tensor) -> dict:
    """Masses from dN/dm ~ m^slope on the mass range (inverse CDF), radius ~ U[r_lo, r_hi], uniform angle;
    the count fixed, or Poisson (its slots beyond the count hold nothing: mass, theta_E and position 0)."""
    n = subhalo_slots(config)
    lo, hi = config.subhalo_mass_range
    a = config.subhalo_mass_slope + 1.0
    u_mass, u_radius, u_angle = u[:, :n], u[:, n : 2 * n], u[:, 2 * n : 3 * n]
    if abs(a) < 1e-12:  # slope -1: log-uniform
        mass = lo * (hi / lo) ** u_mass
    else:
        mass = (lo**a + (hi**a - lo**a) * u_mass) ** (1.0 / a)
    radius = _between(u_radius, *config.subhalo_radius_range)
    angle = 2 * math.pi * u_angle
    if config.subhalo_count == "poisson":
        count = poisson_count(u[:, 3 * n], float(config.n_subhalos), n) * present.to(torch.int64)
    else:
        count = present.to(torch.int64) * n
    mask = (torch.arange(n, device=u.device)[None, :] < count[:, None]).to(u.dtype)
    mass = mass * mask
    return {
        "subhalo_x": radius * torch.cos(angle) * mask,
        "subhalo_y": radius * torch.sin(angle) * mask,
        "subhalo_mass": mass,
        "subhalo_theta_E": unit_einstein_radius(config) * torch.sqrt(mass),
        "n_subhalos": count,
    }


def vortex_half_length(config: SimulationConfig, log10_axion_mass: torch.Tensor) -> torch.Tensor:
    """The vortex line's half-length in arcsec, ``vortex_half_length_at_1e22 * 1e-22 eV / m``: lighter
    axions (longer de Broglie wavelengths) make longer lines of the same total mass."""
    return config.vortex_half_length_at_1e22 * 10.0 ** (-22.0 - log10_axion_mass)


def _sample_vortex(config: SimulationConfig, u: torch.Tensor, present: torch.Tensor) -> dict:
    """Axion mass 10^U(range) eV; the line's half-length from :func:`vortex_half_length`; a uniform angle."""
    log10_m = _between(u[:, 0], *config.log10_axion_mass_range)
    half_length = vortex_half_length(config, log10_m)
    theta = unit_einstein_radius(config) * math.sqrt(config.vortex_mass)
    zeros = torch.zeros_like(log10_m)
    return {
        "vortex_center_x": zeros.clone(),
        "vortex_center_y": zeros.clone(),
        "vortex_angle": 2 * math.pi * u[:, 1],
        "vortex_half_length": torch.where(present, half_length, torch.ones_like(half_length)),
        "vortex_theta_E": torch.where(present, zeros + theta, zeros),
        "log10_axion_mass": torch.where(present, log10_m, torch.full_like(log10_m, math.nan)),
    }
