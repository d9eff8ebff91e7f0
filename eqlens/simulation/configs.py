"""Simulation configs: plain frozen data, one per named recipe, edited with ``dataclasses.replace``.

Class order is FIXED and alphabetical, and a label is the position of its name in
``config.class_names``: ``model_i`` / ``model_ii`` -> ("axion", "cdm", "no_sub") = (0, 1, 2);
``binary`` -> ("no_sub", "sub") = (0, 1). The substructure a class name means is
:data:`SUBSTRUCTURE` ("sub" is CDM subhalos).

Every ``*_range`` field is a randomisation option for harder data: ``None`` keeps the fixed recipe
value, ``(lo, hi)`` draws uniformly per image (see :mod:`eqlens.simulation.sampling`).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

from ..errors import EqlensError

SUBSTRUCTURE = {"no_sub": "none", "cdm": "subhalos", "sub": "subhalos", "axion": "vortex"}
NOISE_MODELS = ("deeplense", "poisson")
VORTEX_MODELS = ("line", "points")
SUBHALO_PROFILES = ("point_mass", "tnfw")
SUBHALO_COUNTS = ("fixed", "poisson")

Range = tuple[float, float] | None
MAX_SUBHALO_SLOTS = 1000  # subhalos a lens may carry: the batch holds [B, n] tensors of them

# Physical bounds of a setting (a range: both ends): (low, high, low end open, high end open, what it is).
_INF = math.inf
_PHYSICAL_RANGES = {
    "theta_E": (0.0, _INF, True, True, "the Einstein radius (arcsec)"),
    "theta_E_range": (0.0, _INF, True, True, "the Einstein radius (arcsec)"),
    "lens_axis_ratio_range": (0.0, 1.0, True, False, "the axis ratio q"),
    "lens_ellipticity_range": (0.0, 1.0, False, True, "the ellipticity |e| = (1 - q) / (1 + q)"),
    "source_ellipticity_range": (0.0, 1.0, False, True, "the source ellipticity |e|"),
    "shear_range": (0.0, 1.0, False, True, "the shear |gamma|"),
    "psf_fwhm": (0.0, _INF, False, True, "the PSF FWHM (arcsec)"),
    "psf_fwhm_range": (0.0, _INF, True, True, "the PSF FWHM (arcsec)"),
    "source_R_sersic": (0.0, _INF, True, True, "the Sersic radius (arcsec)"),
    "source_R_sersic_range": (0.0, _INF, True, True, "the Sersic radius (arcsec)"),
    "source_n_sersic": (0.0, _INF, True, True, "the Sersic index"),
    "source_n_sersic_range": (0.0, _INF, True, True, "the Sersic index"),
    "log10_exposure_range": (-_INF, 12.0, True, False, "log10 of the exposure (s)"),
    "background_rms": (0.0, _INF, False, True, "the background rms"),
    "background_rms_range": (0.0, _INF, False, True, "the background rms"),
    "halo_mass": (0.0, _INF, True, True, "the halo mass (Msun)"),
}


class SimulationConfigError(EqlensError, ValueError):
    """An unknown config name or an inconsistent setting."""


@dataclass(frozen=True)
class SimulationConfig:
    """Everything that defines a simulated data set. Angles in arcsec, masses in Msun, phi in radians."""

    name: str = "model_i"
    class_names: tuple[str, ...] = ("axion", "cdm", "no_sub")
    # instrument
    image_size: int = 150
    pixel_scale: float = 0.05
    supersampling: int = 1
    psf_fwhm: float = 0.087
    psf_truncation: float = 3.0  # kernel half-width in PSF sigmas
    background_rms: float = 0.01  # counts/s per pixel
    log10_exposure_range: tuple[float, float] = (3.0, 3.5)  # exposure time 10^U(3, 3.5)
    noise_model: str = "deeplense"
    # cosmology and main lens (SIE + external shear)
    halo_mass: float = 1e12
    z_lens: float = 0.5
    z_source: float = 1.0
    H0: float = 70.0
    Om0: float = 0.3
    distance_convention: str = "deeplense"
    theta_E: float | None = None  # None: the Einstein radius of halo_mass (1.2815" for Model I)
    lens_e1: float = 0.1
    lens_e2: float = 0.0
    gamma1: float = 0.05
    gamma2: float = 0.0
    # source: elliptical Sersic
    source_amp: float = 20.0
    source_R_sersic: float = 0.25
    source_n_sersic: float = 1.0
    source_e1: float = -0.1
    source_e2: float = 0.1
    source_center_half_width: float = 0.35  # centre ~ U[-w, w] on each axis
    # CDM: point-mass subhalos, dN/dm ~ m^slope, radius ~ U[r_lo, r_hi], uniform angle
    n_subhalos: int = 25
    subhalo_mass_range: tuple[float, float] = (1e6, 1e10)
    subhalo_mass_slope: float = -0.9
    subhalo_radius_range: tuple[float, float] = (0.25, 2.0)
    # "point_mass": the recipe's; "tnfw": truncated NFW subhalos of the same masses and positions, each of the
    # same total mass as its point mass (Duffy et al. 2008 concentration, tidal truncation: simulator.tnfw_subhalos)
    subhalo_profile: str = "point_mass"
    # "fixed": every CDM lens has n_subhalos; "poisson": a Poisson(n_subhalos) count per lens, capped at max_subhalos
    # (the slots the batch carries; P(N > 60) is 2e-9 at a mean of 25)
    subhalo_count: str = "fixed"
    max_subhalos: int = 60
    # axion: a vortex line through the lens centre at a uniform angle
    vortex_mass: float = 3e10
    log10_axion_mass_range: tuple[float, float] = (-24.0, -22.0)  # eV
    vortex_half_length_at_1e22: float = 0.03  # half-length = this * 1e-22 eV / m
    # "points": the recipe's vortex_points equal point masses; "line": the closed-form uniform segment of the same
    # mass (data records without a simulation_config were rendered with it: model_i_line)
    vortex_model: str = "points"
    vortex_points: int = 100
    # randomisation options (None = fixed recipe value)
    theta_E_range: Range = None
    lens_ellipticity_range: Range = None  # |e| = (1 - q) / (1 + q), drawn uniformly
    lens_axis_ratio_range: Range = None  # q drawn uniformly, |e| = (1 - q) / (1 + q) (not with the |e| range)
    lens_orientation_range: Range = None  # phi of the lens major axis
    shear_range: Range = None  # |gamma|, angle uniform
    source_R_sersic_range: Range = None
    source_n_sersic_range: Range = None
    source_position_range: Range = None  # replaces (-w, w) for each axis of the source centre
    source_ellipticity_range: Range = None  # source |e|, at a uniform angle (None: source_e1, source_e2)
    psf_fwhm_range: Range = None
    background_rms_range: Range = None

    def __post_init__(self):
        unknown = [c for c in self.class_names if c not in SUBSTRUCTURE]
        if unknown or len(set(self.class_names)) != len(self.class_names) or not self.class_names:
            raise SimulationConfigError(f"class_names {self.class_names!r}: each must be one of {sorted(SUBSTRUCTURE)}")
        if list(self.class_names) != sorted(self.class_names):
            raise SimulationConfigError(f"class_names {self.class_names!r} must be in alphabetical order")
        if self.image_size < 2 or self.supersampling < 1 or self.pixel_scale <= 0:
            raise SimulationConfigError("image_size >= 2, supersampling >= 1 and pixel_scale > 0 are required")
        if self.noise_model not in NOISE_MODELS:
            raise SimulationConfigError(f"noise_model {self.noise_model!r}: use one of {NOISE_MODELS}")
        if self.subhalo_profile not in SUBHALO_PROFILES:
            raise SimulationConfigError(f"subhalo_profile {self.subhalo_profile!r}: use one of {SUBHALO_PROFILES}")
        if self.vortex_model not in VORTEX_MODELS:
            raise SimulationConfigError(f"vortex_model {self.vortex_model!r}: use one of {VORTEX_MODELS}")
        if self.subhalo_count not in SUBHALO_COUNTS:
            raise SimulationConfigError(f"subhalo_count {self.subhalo_count!r}: use one of {SUBHALO_COUNTS}")
        if not 0 <= self.n_subhalos <= MAX_SUBHALO_SLOTS or not 1 <= self.max_subhalos <= MAX_SUBHALO_SLOTS:
            raise SimulationConfigError(f"n_subhalos and max_subhalos must lie in [0, {MAX_SUBHALO_SLOTS}] "
                                        f"(max_subhalos >= 1), got {self.n_subhalos} and {self.max_subhalos}")
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.name.endswith("_range") and value is not None and (len(value) != 2 or value[0] > value[1]):
                raise SimulationConfigError(f"{f.name} = {value!r}: expected (lo, hi) with lo <= hi")
        if self.lens_axis_ratio_range is not None and self.lens_ellipticity_range is not None:
            raise SimulationConfigError("lens_axis_ratio_range and lens_ellipticity_range both set the lens's |e|: "
                                        "give one")
        for name, (low, high, low_open, high_open, what) in _PHYSICAL_RANGES.items():
            value = getattr(self, name)
            for v in (value if name.endswith("_range") else (value,)) if value is not None else ():
                if not math.isfinite(v) or v < low or (low_open and v == low) or v > high or (high_open and v == high):
                    lo_bracket, hi_bracket = "(" if low_open else "[", ")" if high_open else "]"
                    raise SimulationConfigError(f"{name} = {value!r}: {what} must lie in "
                                                f"{lo_bracket}{low:g}, {high:g}{hi_bracket}")

    def same_scenes(self, other: SimulationConfig) -> bool:
        """Whether ``other`` draws the same scenes from the same seeds: every setting equal but the name and
        how a vortex or a subhalo is drawn (``vortex_model``, ``vortex_points``, ``subhalo_profile``), so image
        i shows the same lens, its subhalos of the same masses at the same places."""
        drawing = {"name", "vortex_model", "vortex_points", "subhalo_profile"}
        return all(getattr(self, f.name) == getattr(other, f.name) for f in dataclasses.fields(self)
                   if f.name not in drawing)

    @property
    def vortex_form(self) -> str | None:
        """How this config draws the axion vortex, in words for printing; None when no class has one."""
        if not any(SUBSTRUCTURE[c] == "vortex" for c in self.class_names):
            return None
        if self.vortex_model == "points":
            return f"vortex: the recipe's {self.vortex_points} point masses"
        return "vortex: the closed-form uniform line"

    @property
    def subhalo_form(self) -> str | None:
        """How this config draws CDM subhalos, in words for printing; None when no class has them."""
        if not any(SUBSTRUCTURE[c] == "subhalos" for c in self.class_names):
            return None
        if self.subhalo_profile == "tnfw":
            return "subhalos: truncated NFW"
        return "subhalos: point masses"

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def field_of_view(self) -> float:
        """Side of the image in arcsec."""
        return self.image_size * self.pixel_scale

    def to_dict(self) -> dict:
        """Plain JSON-able dict (tuples become lists); ``SimulationConfig.from_dict`` inverts it."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}

    @classmethod
    def from_dict(cls, data: dict) -> SimulationConfig:
        names = {f.name for f in dataclasses.fields(cls)}
        extra = set(data) - names
        if extra:
            raise SimulationConfigError(f"unknown simulation config fields: {sorted(extra)}")
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in data.items()})


_MODEL_I = SimulationConfig()
_MODEL_I_VARIED = dataclasses.replace(
    _MODEL_I, name="model_i_varied",
    theta_E_range=(1.0, 1.6), lens_axis_ratio_range=(0.7, 1.0), lens_orientation_range=(0.0, math.pi),
    shear_range=(0.0, 0.1), source_R_sersic_range=(0.15, 0.4), source_n_sersic_range=(0.7, 2.5),
    source_ellipticity_range=(0.0, 0.2), log10_exposure_range=(2.75, 3.75), psf_fwhm_range=(0.07, 0.11),
    subhalo_count="poisson", n_subhalos=25,
)
_CONFIGS = {
    # DeepLense Model I (DeepLenseSim, lenstronomy): 150 x 150 at 0.05", the vortex as 100 point masses.
    "model_i": _MODEL_I,
    # Model I with the vortex as the closed-form uniform line of the same mass: model_i's form before
    # 2026-12-02, the data every checkpoint trained before then saw (docs/simulator.md, "Vortex").
    "model_i_line": dataclasses.replace(_MODEL_I, name="model_i_line", vortex_model="line"),
    # Model I with extended CDM subhalos: the same scenes (masses, positions, everything), each subhalo a
    # truncated NFW of its point mass's total mass (docs/simulator.md, "Subhalos"; simulator.tnfw_subhalos).
    "model_i_tnfw": dataclasses.replace(_MODEL_I, name="model_i_tnfw", subhalo_profile="tnfw"),
    # In the spirit of Models II/III: 64 x 64, Euclid-like 0.1" pixels (6.4" field, close to Model I's
    # 7.5"), a Euclid VIS-like PSF, and 2x supersampling since these pixels are coarse.
    # Model I's instrument, classes, subhalo mass function, vortex and noise model on a lens population that
    # varies as real lenses do, each setting drawn independently per lens (docs/simulator.md, "Varied population").
    "model_i_varied": _MODEL_I_VARIED,
    # The same population with truncated-NFW subhalos (each of its point mass's total mass, recipe units).
    "model_i_varied_tnfw": dataclasses.replace(_MODEL_I_VARIED, name="model_i_varied_tnfw", subhalo_profile="tnfw"),
    "model_ii": SimulationConfig(name="model_ii", image_size=64, pixel_scale=0.1, psf_fwhm=0.16, supersampling=2),
    # The binary sub / no_sub task of the EqCvT work; "sub" is CDM subhalos as in Model I.
    "binary": SimulationConfig(name="binary", class_names=("no_sub", "sub")),
}


def config_names() -> tuple[str, ...]:
    """Names accepted by :func:`get_config`."""
    return tuple(_CONFIGS)


def registered_name(config: SimulationConfig) -> str | None:
    """The name :func:`get_config` knows ``config`` by: the registered config equal to it in every setting
    but the ``name`` field (so a record's config finds its name again); None when no registered config is."""
    for name, known in _CONFIGS.items():
        if dataclasses.replace(known, name=config.name) == config:
            return name
    return None


def get_config(name: str | SimulationConfig) -> SimulationConfig:
    """The named config (a config passes through); unknown names raise :class:`SimulationConfigError`."""
    if isinstance(name, SimulationConfig):
        return name
    try:
        return _CONFIGS[name]
    except KeyError:
        known = ", ".join(_CONFIGS)
        raise SimulationConfigError(f"unknown simulation config {name!r}; choose one of {known}") from None
