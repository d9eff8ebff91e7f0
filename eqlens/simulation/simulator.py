"""The batched lens simulator: scene parameters -> ray-traced, PSF-blurred, noisy count images.

    sim = LensSimulator(get_config("model_i"), device="cpu", dtype=torch.float32)
    batch = sim.simulate(seed, indices)          # LensBatch(images [B, H, W], labels [B], truth)

Pipeline (each step a function you can call alone, which the tests do):
``sample`` (priors, :mod:`.sampling`) -> ``deflection`` (SIE + shear + subhalos (point masses or
truncated NFWs, :func:`tnfw_subhalos`) + vortex,
:mod:`.profiles`) -> ``render`` (lens equation beta = theta - alpha, Sersic source, supersampling,
PSF; noiseless counts/s per pixel) -> noise (:func:`.instrument.add_noise`, counts).

Determinism: every random number is a function of (seed, index, stream, element) only, so the same
(seed, index) gives the same image whatever the batch size, its batch-mates, or the order.

Cost: the grid is separable (x depends on the column, y on the row), so per-subhalo offsets are 1-D
and only r^2 and the accumulation touch the full [B, H, W] field; the sum over subhalos is a loop
accumulating into two fields (never a [B, n_sub, H, W] tensor), which ``torch.compile`` fuses into
one kernel (``compile=True``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from . import instrument
from .configs import SimulationConfig, get_config
from .cosmology import nfw_scale_radius_arcsec, physical_mass_factor
from .light import SersicEllipse
from .profiles import SIE, TNFW, Shear, UniformLine
from .sampling import LensParameters, sample_parameters, unit_einstein_radius


def _col(t: torch.Tensor) -> torch.Tensor:
    """``[B]`` -> ``[B, 1, 1]`` to broadcast against a ``[1, H, W]`` grid."""
    return t[:, None, None]


def point_mass_sum(x, y, theta_E, center_x, center_y):
    """Deflection of ``n`` point masses per image, ``theta_E, center_* [B, n]``, on the separable grid
    ``x [1, 1, W]``, ``y [1, H, 1]`` -> ``(alpha_x, alpha_y) [B, H, W]``, accumulated one mass at a time.

    Only three passes over the full field per mass: r^2 (a broadcast sum of two 1-D squares) and one
    ``addcdiv`` per component, whose numerator theta_E^2 dx is 1-D; all in place in reused buffers."""
    tiny = torch.finfo(x.dtype).tiny
    shape = torch.broadcast_shapes(x.shape, y.shape, (theta_E.shape[0], 1, 1))
    ax = torch.zeros(shape, device=x.device, dtype=x.dtype)
    ay = torch.zeros_like(ax)
    r2 = torch.empty_like(ax)
    theta2 = theta_E * theta_E
    for j in range(theta_E.shape[1]):
        dx = x - _col(center_x[:, j])  # [B, 1, W]
        dy = y - _col(center_y[:, j])  # [B, H, 1]
        # tiny keeps r = 0 finite (0 / tiny = 0); it is below half an ulp of any nonzero dy^2 + dx^2 term
        torch.add(dx * dx, dy * dy + tiny, out=r2)
        ax.addcdiv_(_col(theta2[:, j]) * dx, r2)
        ay.addcdiv_(_col(theta2[:, j]) * dy, r2)
    return ax, ay


def tnfw_sum(x, y, Rs, alpha_Rs, r_trunc, center_x, center_y):
    """Deflection of ``n`` truncated NFWs per image (:class:`.profiles.TNFW`), parameters ``[B, n]``, on the
    separable grid ``x [1, 1, W]``, ``y [1, H, 1]`` -> ``(alpha_x, alpha_y) [B, H, W]``, one halo at a time."""
    shape = torch.broadcast_shapes(x.shape, y.shape, (Rs.shape[0], 1, 1))
    ax = torch.zeros(shape, device=x.device, dtype=x.dtype)
    ay = torch.zeros_like(ax)
    for j in range(Rs.shape[1]):
        dx, dy = TNFW.deflection(x, y, *(_col(t[:, j]) for t in (Rs, alpha_Rs, r_trunc, center_x, center_y)))
        ax.add_(dx)
        ay.add_(dy)
    return ax, ay


def _tnfw_far_field(tau: torch.Tensor) -> torch.Tensor:
    """g(X -> inf) of :class:`.profiles.TNFW`: its deflection tends to alpha_Rs Rs g / ((1 + ln 1/2) r), the
    point mass theta_E^2 / r of the halo's total mass (Baltz, Marshall & Oguri 2009)."""
    t2 = tau * tau
    return t2 / (t2 + 1) ** 2 * (math.pi * tau + (t2 - 1) * torch.log(tau) - (t2 + 1))


def tnfw_subhalos(params: LensParameters, config: SimulationConfig) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The drawn subhalos as truncated NFWs: ``(Rs, alpha_Rs, r_trunc)``, each ``[B, n]`` (arcsec), centred on
    ``(subhalo_x, subhalo_y)``. Same masses and places as the point masses; only the profile differs.

    * Scale radius: Rs of an M200c NFW halo of the drawn mass in physical Msun (recipe units times
      :func:`.cosmology.physical_mass_factor`, 0.593 for Model I: one convention for every mass) with the Duffy
      et al. 2008 concentration (:func:`.cosmology.nfw_scale_radius_arcsec`: 0.017" at 1e6 physical Msun, 0.12"
      at 1e8, 0.8" at 1e10).
    * Truncation: the tidal (Jacobi) radius of a satellite on a circular orbit at distance r from the host,
      r_t = r (m / ((2 - dlnM/dlnr) M(<r)))^(1/3) (Tormen, Diaferio & Syer 1998), in an isothermal host
      (dlnM/dlnr = 1) whose 3-D mass inside r is, in Einstein-radius units, (2 / pi) theta_E r: so
      r_t = (pi theta_m^2 r^2 / (2 theta_E))^(1/3), theta_m the subhalo's point-mass Einstein radius and r its
      projected distance from the lens centre (a lower bound of the 3-D one, floored at 0.001"). About 0.06"
      for 1e8 Msun at 1": r_t / Rs ~ 0.3-0.8, subhalos stripped inside their scale radius.
    * Normalisation: alpha_Rs such that the total (truncated) mass equals the drawn mass in the recipe's units
      (far from it the halo deflects as the point mass theta_m^2 / r): only the mass's extent changes.
    Absent subhalos (mass 0) get alpha_Rs = 0 and Rs = r_trunc = 1" (a zero field, no NaN)."""
    present = params.subhalo_mass > 0
    one = torch.ones_like(params.subhalo_mass)
    # the concentration-mass relation and r200 are physical: recipe-unit masses converted first
    to_physical = physical_mass_factor(config.z_lens, config.z_source, config.H0, config.Om0,
                                       config.distance_convention)
    Rs = torch.where(present, nfw_scale_radius_arcsec(torch.where(present, params.subhalo_mass, one) * to_physical,
                                                      config.z_lens, config.H0, config.Om0), one)
    theta2 = params.subhalo_theta_E * params.subhalo_theta_E
    r = torch.hypot(params.subhalo_x - params.lens_center_x[:, None],
                    params.subhalo_y - params.lens_center_y[:, None]).clamp(min=1e-3)
    tidal = (math.pi * theta2 * r * r / (2 * params.theta_E[:, None])) ** (1 / 3)
    r_trunc = torch.where(present, tidal, one)
    alpha_Rs = theta2 * (1 + math.log(0.5)) / (Rs * _tnfw_far_field(r_trunc / Rs))
    return Rs, alpha_Rs, r_trunc


def vortex_points(params: LensParameters, n: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The vortex as ``n`` equal point masses evenly spaced end to end: ``(theta_E, x, y)``, each ``[B, n]``."""
    s = torch.linspace(-1.0, 1.0, n, device=params.vortex_angle.device, dtype=params.vortex_angle.dtype)
    along = params.vortex_half_length[:, None] * s[None]
    x = params.vortex_center_x[:, None] + along * torch.cos(params.vortex_angle)[:, None]
    y = params.vortex_center_y[:, None] + along * torch.sin(params.vortex_angle)[:, None]
    theta = (params.vortex_theta_E / math.sqrt(n))[:, None].expand(-1, n)  # theta_E^2 adds up
    return theta, x, y


@dataclass
class LensTruth:
    """Ground truth of a batch (tensors, batch first) for overlays, metrics and JSON.

    Angles in arcsec on the sky grid of :mod:`.instrument` (array row index grows with y);
    :meth:`for_image` also gives pixel coordinates (col, row) so an overlay needs no convention.
    """

    labels: torch.Tensor  # [B]
    class_names: tuple[str, ...]
    theta_E: torch.Tensor  # [B]
    source_center: torch.Tensor  # [B, 2] (x, y)
    subhalo_positions: torch.Tensor  # [B, n_max, 2]; padding rows are 0 with mass 0
    subhalo_masses: torch.Tensor  # [B, n_max] Msun
    n_subhalos: torch.Tensor  # [B]
    vortex_endpoints: torch.Tensor  # [B, 2, 2] ((x0, y0), (x1, y1)); NaN without a vortex
    log10_axion_mass: torch.Tensor  # [B] log10(m / eV); NaN without a vortex
    exposure: torch.Tensor  # [B] seconds (arbitrary units, as DeepLense)
    pixel_scale: float
    image_size: int
    lens_e: torch.Tensor | None = None  # [B, 2] (e1, e2) of the SIE
    shear: torch.Tensor | None = None  # [B, 2] (gamma1, gamma2)
    source_R_sersic: torch.Tensor | None = None  # [B] arcsec
    source_n_sersic: torch.Tensor | None = None  # [B]
    source_e: torch.Tensor | None = None  # [B, 2] (e1, e2) of the source
    psf_fwhm: torch.Tensor | None = None  # [B] arcsec
    physical_mass_factor: float = 1.0  # physical Msun per recipe-unit Msun (cosmology.physical_mass_factor)
    unit_einstein_radius: float | None = None  # arcsec of 1 recipe-unit Msun: theta_E(M) = this * sqrt(M)
    vortex_mass: float | None = None  # recipe-unit Msun of the whole vortex (axion lenses)

    @classmethod
    def from_parameters(cls, params: LensParameters, config: SimulationConfig) -> LensTruth:
        has_vortex = ~torch.isnan(params.log10_axion_mass)
        u = torch.stack([torch.cos(params.vortex_angle), torch.sin(params.vortex_angle)], dim=-1)
        centre = torch.stack([params.vortex_center_x, params.vortex_center_y], dim=-1)
        half = params.vortex_half_length[:, None] * u
        ends = torch.stack([centre - half, centre + half], dim=1)
        ends = torch.where(has_vortex[:, None, None], ends, torch.full_like(ends, math.nan))
        return cls(
            labels=params.labels,
            class_names=tuple(config.class_names),
            theta_E=params.theta_E,
            source_center=torch.stack([params.source_center_x, params.source_center_y], dim=-1),
            subhalo_positions=torch.stack([params.subhalo_x, params.subhalo_y], dim=-1),
            subhalo_masses=params.subhalo_mass,
            n_subhalos=params.n_subhalos,
            vortex_endpoints=ends,
            log10_axion_mass=params.log10_axion_mass,
            exposure=params.exposure,
            pixel_scale=float(config.pixel_scale),
            image_size=int(config.image_size),
            lens_e=torch.stack([params.lens_e1, params.lens_e2], dim=-1),
            shear=torch.stack([params.gamma1, params.gamma2], dim=-1),
            source_R_sersic=params.source_R_sersic,
            source_n_sersic=params.source_n_sersic,
            source_e=torch.stack([params.source_e1, params.source_e2], dim=-1),
            psf_fwhm=params.psf_fwhm,
            physical_mass_factor=physical_mass_factor(config.z_lens, config.z_source, config.H0, config.Om0,
                                                      config.distance_convention),
            unit_einstein_radius=unit_einstein_radius(config),
            vortex_mass=float(config.vortex_mass),
        )

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def to_pixel(self, xy) -> list[float]:
        """Sky (x, y) arcsec -> (col, row) array coordinates (fractional; pixel centres are integers)."""
        c = (self.image_size - 1) / 2
        return [float(xy[0]) / self.pixel_scale + c, float(xy[1]) / self.pixel_scale + c]

    def for_image(self, i: int) -> dict:
        """Image ``i``'s truth as plain Python floats/lists (``None`` where absent): JSON-ready."""
        n = int(self.n_subhalos[i])
        positions = self.subhalo_positions[i, :n].detach().cpu().double().tolist()
        log_m = float(self.log10_axion_mass[i])
        ends = None if math.isnan(log_m) else self.vortex_endpoints[i].detach().cpu().double().tolist()
        label = int(self.labels[i])
        return {
            "label": label,
            "class_name": self.class_names[label],
            "theta_E": float(self.theta_E[i]),
            "source_center": [float(v) for v in self.source_center[i]],
            "subhalo_positions": positions,
            "subhalo_masses": self.subhalo_masses[i, :n].detach().cpu().double().tolist(),
            "subhalo_pixels": [self.to_pixel(p) for p in positions],
            "vortex_endpoints": ends,
            "vortex_pixels": None if ends is None else [self.to_pixel(p) for p in ends],
            "log10_axion_mass": None if math.isnan(log_m) else log_m,
            "axion_mass_ev": None if math.isnan(log_m) else 10.0**log_m,
            "exposure": float(self.exposure[i]),
            "pixel_scale": self.pixel_scale,
            "image_size": self.image_size,
            "physical_mass_factor": self.physical_mass_factor,
            "unit_einstein_radius": self.unit_einstein_radius,
            "vortex_mass": None if ends is None else self.vortex_mass,
            **self._shape_truth(i),
        }

    def _shape_truth(self, i: int) -> dict:
        """Lens and source shapes, shear and PSF of image ``i``: the spin-2 pairs with their moduli and the
        position angles (deg, counter-clockwise from +x on the sky grid; the SIE's q = (1 - |e|) / (1 + |e|))."""
        if self.lens_e is None:
            return {}
        out = {}
        for name, pair in (("lens", self.lens_e), ("shear", self.shear), ("source", self.source_e)):
            e1, e2 = (float(v) for v in pair[i])
            out[f"{name}_e1" if name != "shear" else "gamma1"] = e1
            out[f"{name}_e2" if name != "shear" else "gamma2"] = e2
            modulus = math.hypot(e1, e2)
            out[f"{name}_{'ellipticity' if name != 'shear' else 'modulus'}"] = modulus
            out[f"{name}_angle_deg"] = math.degrees(0.5 * math.atan2(e2, e1)) % 180.0
        out["lens_axis_ratio"] = (1 - out["lens_ellipticity"]) / (1 + out["lens_ellipticity"])
        out["source_R_sersic"] = float(self.source_R_sersic[i])
        out["source_n_sersic"] = float(self.source_n_sersic[i])
        out["psf_fwhm"] = float(self.psf_fwhm[i])
        return out


@dataclass
class LensBatch:
    """``images [B, H, W]`` noisy counts (float, on the simulator's device), ``labels [B]`` int64, ``truth``."""

    images: torch.Tensor
    labels: torch.Tensor
    truth: LensTruth


class LensSimulator:
    """Batched, deterministic simulator of one :class:`SimulationConfig` on ``device`` in ``dtype``.

    ``compile=True`` wraps the per-pixel work (``render``, and render + noise in ``simulate``) in
    ``torch.compile``; the first call per batch size then pays a compilation (tens of seconds), later
    calls run fused kernels. Sampling and the RNG keys stay eager (a few ``[B]`` tensors).

    No host syncs in the per-pixel path on accelerators: substructure that no image has is skipped
    only on the CPU (a sync elsewhere), and the Poisson sampler takes fixed steps there.
    """

    def __init__(self, config: SimulationConfig | str = "model_i", device="cpu", dtype=torch.float32, compile=False):
        self.config = get_config(config)
        self.device = torch.device(device)
        self.dtype = dtype
        cfg = self.config
        s = cfg.supersampling
        self._x = instrument.pixel_axis(cfg.image_size, cfg.pixel_scale, s, self.device, dtype)[None, None, :]
        self._y = instrument.pixel_axis(cfg.image_size, cfg.pixel_scale, s, self.device, dtype)[None, :, None]
        widest = cfg.psf_fwhm_range[1] if cfg.psf_fwhm_range else cfg.psf_fwhm
        self.psf_radius = instrument.psf_radius_pixels(widest, cfg.pixel_scale, cfg.psf_truncation)
        self.compiled = bool(compile)
        self._render = torch.compile(self._render_eager) if compile else self._render_eager
        self._noisy_image = torch.compile(self._noisy_image_eager) if compile else self._noisy_image_eager

    @property
    def class_names(self) -> tuple[str, ...]:
        return self.config.class_names

    @property
    def num_classes(self) -> int:
        return self.config.num_classes

    @property
    def grid(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Ray-tracing grid: ``x [1, 1, W*s]`` and ``y [1, H*s, 1]`` (arcsec), s the supersampling."""
        return self._x, self._y

    # -- the pipeline, step by step -------------------------------------------------------------
    def sample(self, seed: int, indices, labels=None) -> LensParameters:
        """Scene parameters of images ``indices`` in the simulator's dtype and device."""
        return sample_parameters(self.config, seed, indices, labels, self.device).to(dtype=self.dtype)

    def deflection(self, params: LensParameters, x=None, y=None, skip_absent=True) -> tuple[torch.Tensor, torch.Tensor]:
        """Total deflection ``(alpha_x, alpha_y) [B, H, W]`` at ``x [.., 1, W]``, ``y [.., H, 1]`` (default: grid).

        ``skip_absent`` skips substructure that no image of the batch has (exact: absent terms are
        zeros); the compiled path turns it off to keep one graph without data-dependent branches."""
        x = self._x if x is None else x
        y = self._y if y is None else y
        p = params
        ax, ay = SIE.deflection(x, y, _col(p.theta_E), _col(p.lens_e1), _col(p.lens_e2),
                                _col(p.lens_center_x), _col(p.lens_center_y))  # fmt: skip
        sx, sy = Shear.deflection(x, y, _col(p.gamma1), _col(p.gamma2))
        ax, ay = ax.add_(sx), ay.add_(sy)  # the SIE's fields are fresh: accumulate in place
        if p.subhalo_theta_E.shape[1] and not (skip_absent and bool((p.subhalo_theta_E == 0).all())):
            if self.config.subhalo_profile == "tnfw":
                dx, dy = self._tnfw_deflection(p, x, y, skip_absent)
            else:
                dx, dy = point_mass_sum(x, y, p.subhalo_theta_E, p.subhalo_x, p.subhalo_y)
            ax, ay = ax.add_(dx), ay.add_(dy)
        if not (skip_absent and bool((p.vortex_theta_E == 0).all())):
            if self.config.vortex_model == "line":
                line = (p.vortex_theta_E, p.vortex_half_length, p.vortex_angle, p.vortex_center_x, p.vortex_center_y)
                dx, dy = UniformLine.deflection(x, y, *(_col(t) for t in line))
            else:
                dx, dy = point_mass_sum(x, y, *vortex_points(p, self.config.vortex_points))
            ax, ay = ax.add_(dx), ay.add_(dy)
        return ax, ay

    def _tnfw_deflection(self, p: LensParameters, x, y, skip_absent: bool) -> tuple[torch.Tensor, torch.Tensor]:
        """The subhalos' TNFW deflection ``[B, H, W]``; with ``skip_absent`` only the images that hold a
        subhalo are computed (about 7x the point masses' cost per image), the others get exact zeros."""
        halos = (*tnfw_subhalos(p, self.config), p.subhalo_x, p.subhalo_y)
        rows = (p.subhalo_theta_E != 0).any(dim=1)
        if not skip_absent or bool(rows.all()):
            return tnfw_sum(x, y, *halos)
        dx, dy = tnfw_sum(x, y, *(t[rows] for t in halos))
        shape = torch.broadcast_shapes(x.shape, y.shape, (rows.shape[0], 1, 1))
        ax, ay = dx.new_zeros(shape), dy.new_zeros(shape)
        ax[rows], ay[rows] = dx, dy
        return ax, ay

    def source_brightness(self, params: LensParameters, x, y) -> torch.Tensor:
        """Unlensed source surface brightness at source-plane positions ``x, y`` (broadcast with ``[B, 1, 1]``)."""
        p = params
        return SersicEllipse.surface_brightness(
            x, y, _col(p.source_amp), _col(p.source_R_sersic), _col(p.source_n_sersic),
            _col(p.source_e1), _col(p.source_e2), _col(p.source_center_x), _col(p.source_center_y),
        )  # fmt: skip

    def _lensed_surface_brightness(self, params: LensParameters) -> torch.Tensor:
        skip = self.device.type == "cpu" and not torch.compiler.is_compiling()  # one graph, no syncs elsewhere
        ax, ay = self.deflection(params, skip_absent=skip)
        # beta = theta - alpha, in place: -alpha + theta rounds exactly as theta - alpha
        return self.source_brightness(params, ax.neg_().add_(self._x), ay.neg_().add_(self._y))

    def render(self, params: LensParameters, psf: bool = True) -> torch.Tensor:
        """Noiseless image ``[B, H, W]`` in counts/s per pixel (surface brightness x pixel area)."""
        return self._render(params, psf)

    def _render_eager(self, params: LensParameters, psf: bool = True) -> torch.Tensor:
        sb = self._lensed_surface_brightness(params)
        flux = instrument.downsample(sb, self.config.supersampling) * self.config.pixel_scale**2
        if not psf:
            return flux
        kernels = instrument.gaussian_kernels_1d(params.psf_fwhm, self.config.pixel_scale, self.psf_radius)
        return instrument.convolve_psf(flux, kernels)

    def add_noise(self, flux: torch.Tensor, params: LensParameters, seed: int, indices) -> torch.Tensor:
        """Noisy counts ``[B, H, W]`` of the noiseless ``flux`` (see :func:`.instrument.add_noise`)."""
        idx = self._indices(indices)
        return instrument.add_noise(flux, params.exposure, params.background_rms, seed, idx, self.config.noise_model)

    def _noisy_image_eager(self, params: LensParameters, normal_keys, poisson_keys) -> torch.Tensor:
        return instrument.add_noise_from_keys(self._render_eager(params), params.exposure, params.background_rms,
                                              normal_keys, poisson_keys, self.config.noise_model)  # fmt: skip

    def _indices(self, indices) -> torch.Tensor:
        """Image indices as ``[B]`` int64 on the device, checked on the host when they come from it."""
        idx = torch.as_tensor(indices, dtype=torch.int64).reshape(-1)
        if idx.device.type == "cpu" and bool((idx < 0).any()):
            raise ValueError("seeds and image indices must be non-negative")
        return idx.to(self.device)

    def simulate(self, seed: int, indices: Sequence[int] | torch.Tensor, labels=None,
                 turn_deg: float | torch.Tensor | None = None) -> LensBatch:
        """Images ``indices`` of the data set ``seed``; ``labels=None`` -> ``index % num_classes``.

        ``turn_deg`` (a float or ``[B]``): render each scene turned so that its image is the upright
        one turned counter-clockwise by that angle (:meth:`LensParameters.turned`), with the pixel grid
        and noise keys of the upright image, so no picture is resampled. The truth is the turned scene's."""
        idx = self._indices(indices)
        params = self.sample(seed, idx, labels)
        if turn_deg is not None:
            params = params.turned(turn_deg)
        images = self._noisy_image(params, *instrument.noise_keys(seed, idx))
        return LensBatch(images=images, labels=params.labels, truth=LensTruth.from_parameters(params, self.config))
