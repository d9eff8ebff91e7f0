"""Named distribution shifts: the test data a model was NOT trained on, built from the simulator's own options.

A simulation shift is a function ``SimulationConfig -> SimulationConfig`` made with
``dataclasses.replace``: it changes the instrument or the lens population and keeps the classes,
so a checkpoint can be scored on the shifted test split as on its own. Because every random draw
of the simulator is keyed by ``(seed, index, stream)`` and not by the config, image ``i`` of a
shifted test split shows the same lens, source and substructure draws as image ``i`` of the
unshifted one: the comparison is paired, only the shifted property differs.

Two shifts turn the lenses instead, to measure how much rotation robustness a model has when it
never saw rotated lenses (trained with ``augment=False``), over a set of angles (see
:mod:`eqlens.experiments.generalisation`): ``orientation`` turns the finished test images
(resampled, cut to the inscribed disk), ``orientation_sky`` turns the scenes and renders them
(:meth:`eqlens.data.SimulatedLensDataset.turned_batch`: no resampling blur, the instrument's own noise at every angle).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from ..simulation import SimulationConfig, get_config
from ..simulation.sampling import main_lens_theta_E

NONE = "none"
"""Name of the reference row: the unshifted test split."""

ORIENTATION = "orientation"
ORIENTATION_SKY = "orientation_sky"
ROTATIONS = (ORIENTATION, ORIENTATION_SKY)


@dataclass(frozen=True)
class Shift:
    """One named shift. ``change`` maps the training config to the shifted one; ``None`` marks the
    orientation shifts, whose images come from the unshifted config turned by a set of angles."""

    name: str
    description: str
    change: Callable[[SimulationConfig], SimulationConfig] | None
    # why the shift means nothing for a base (None: it applies), e.g. theta_E +-1 % of a population that
    # already draws theta_E over a wide range, or a population swap for other classes
    not_applicable: Callable[[SimulationConfig], str | None] | None = None

    def reason_not_applicable(self, base: SimulationConfig) -> str | None:
        """Why this shift does not apply to ``base`` (None: it does)."""
        return None if self.not_applicable is None else self.not_applicable(base)

    @property
    def rotates_images(self) -> bool:
        return self.change is None

    def config(self, base: SimulationConfig) -> SimulationConfig:
        """The config the shifted test images are drawn from (``base`` itself for orientation),
        named ``"<base>+<shift>"`` so reports say where images came from."""
        if self.change is None:
            return base
        return dataclasses.replace(self.change(base), name=f"{base.name}+{self.name}")

    def changes(self, base: SimulationConfig) -> dict:
        """The fields this shift sets on ``base``: ``name -> (before, after)``; empty when it does nothing."""
        shifted = self.config(base)
        return {f.name: (getattr(base, f.name), getattr(shifted, f.name)) for f in dataclasses.fields(base)
                if f.name != "name" and getattr(base, f.name) != getattr(shifted, f.name)}


def _wider_psf(c: SimulationConfig) -> SimulationConfig:
    # Twice the seeing disk; a PSF range is scaled too so a randomised instrument stays randomised.
    scaled = None if c.psf_fwhm_range is None else tuple(2.0 * v for v in c.psf_fwhm_range)
    return dataclasses.replace(c, psf_fwhm=2.0 * c.psf_fwhm, psf_fwhm_range=scaled)


def _noisier(c: SimulationConfig) -> SimulationConfig:
    # After min-max normalisation only noise relative to the signal matters. Poisson noise relative to
    # the counts scales as 1 / sqrt(exposure) and the background relative to the signal as sigma, so
    # exposure / 9 and sigma * 3 make every noise term three times larger against the lensed light.
    lo, hi = c.log10_exposure_range
    drop = math.log10(9.0)
    rms_range = None if c.background_rms_range is None else tuple(3.0 * v for v in c.background_rms_range)
    return dataclasses.replace(c, log10_exposure_range=(lo - drop, hi - drop), background_rms=3.0 * c.background_rms,
                               background_rms_range=rms_range)


def _einstein_radius_range(c: SimulationConfig) -> SimulationConfig:
    theta = main_lens_theta_E(c)
    return dataclasses.replace(c, theta_E_range=(0.6 * theta, 1.4 * theta))


def _random_ellipticity(c: SimulationConfig) -> SimulationConfig:
    # |e| replaces an axis-ratio range (the two set the same modulus and may not both be given)
    return dataclasses.replace(c, lens_ellipticity_range=(0.0, 0.3), lens_axis_ratio_range=None,
                               lens_orientation_range=(0.0, math.pi))


def _random_shear(c: SimulationConfig) -> SimulationConfig:
    return dataclasses.replace(c, shear_range=(0.0, 0.15))


def _source_sizes(c: SimulationConfig) -> SimulationConfig:
    return dataclasses.replace(c, source_R_sersic_range=(0.1, 0.6))


def _theta_e_jitter(fraction: float) -> Callable[[SimulationConfig], SimulationConfig]:
    def change(c: SimulationConfig) -> SimulationConfig:
        theta = main_lens_theta_E(c)
        return dataclasses.replace(c, theta_E_range=((1 - fraction) * theta, (1 + fraction) * theta))

    return change


def _draws_already(field: str, what: str) -> Callable[[SimulationConfig], str | None]:
    def reason(c: SimulationConfig) -> str | None:
        value = getattr(c, field)
        return None if value is None else f"the population already draws {what} over U({value[0]:g}, {value[1]:g})"

    return reason


def _narrow_source_sizes(c: SimulationConfig) -> SimulationConfig:
    return dataclasses.replace(c, source_R_sersic_range=(0.2, 0.3))


def _free_lens_angle(c: SimulationConfig) -> SimulationConfig:
    # the recipe's |e| (0.1 for Model I) kept, its position angle uniform
    return dataclasses.replace(c, lens_orientation_range=(0.0, math.pi))


def _tnfw_subhalos(c: SimulationConfig) -> SimulationConfig:
    return dataclasses.replace(c, subhalo_profile="tnfw")


def _without_subhalos(c: SimulationConfig) -> str | None:
    return None if c.subhalo_form else "no class of this population has subhalos"


VARIED = "model_i_varied"


def _population_fields() -> tuple[str, ...]:
    # the lens-population fields in which model_i_varied differs from model_i, read off the two recipes
    model_i, varied = get_config("model_i"), get_config(VARIED)
    return tuple(f.name for f in dataclasses.fields(model_i)
                 if f.name != "name" and getattr(model_i, f.name) != getattr(varied, f.name))


def _population(target: str) -> Callable[[SimulationConfig], SimulationConfig]:
    # the base with ``target``'s lens population: instrument size, classes and how a vortex or a subhalo is
    # drawn stay the base's, so a model_i_line checkpoint meets the varied lenses with its own vortex form
    def change(c: SimulationConfig) -> SimulationConfig:
        population = get_config(target)
        return dataclasses.replace(c, **{f: getattr(population, f) for f in _population_fields()})

    return change


def _other_classes(target: str) -> Callable[[SimulationConfig], str | None]:
    def reason(c: SimulationConfig) -> str | None:
        classes = get_config(target).class_names
        return None if c.class_names == classes else f"classes {', '.join(c.class_names)} are not {target}'s"

    return reason


def _model_ii_instrument(c: SimulationConfig) -> SimulationConfig:
    # The instrument fields in which model_ii differs from model_i (read off the recipes, so a change
    # to either recipe carries over); the lens population and the classes stay the base's.
    model_i, model_ii = get_config("model_i"), get_config("model_ii")
    instrument = {f.name: getattr(model_ii, f.name) for f in dataclasses.fields(model_ii)
                  if f.name not in ("name", "class_names") and getattr(model_ii, f.name) != getattr(model_i, f.name)}
    return dataclasses.replace(c, **instrument)


_SHIFTS = (
    Shift("psf_wide", "PSF FWHM doubled (0.087\" -> 0.174\" for Model I): worse seeing or a blurrier camera "
          "smears arcs and the small distortions substructure makes.", _wider_psf),
    Shift("noise_x3", "every noise term 3x larger relative to the lensed light (exposure / 9, background rms x 3): "
          "a shallower survey.", _noisier),
    Shift("theta_e_range", "Einstein radius drawn per image from 0.6-1.4x the training value (one fixed "
          "1.28\" for Model I): lens haloes of other masses and redshifts, arcs at other radii.",
          _einstein_radius_range),
    Shift("ellipticity", "lens ellipticity |e| ~ U(0, 0.3) at a random position angle (training: |e| = 0.1 "
          "along x): rounder and flatter lenses, oriented anyhow.", _random_ellipticity),
    Shift("shear", "external shear |gamma| ~ U(0, 0.15) at a random angle (training: 0.05 along x): "
          "neighbouring mass along the line of sight.", _random_shear),
    Shift("source_size", "source half-light radius R_sersic ~ U(0.1\", 0.6\") (training: 0.25\"): compact "
          "sources make thin arcs, large ones smooth out small-scale perturbations.", _source_sizes),
    Shift("model_ii_resized", "the 64x64 Model II instrument (0.1\" pixels, Euclid-like 0.16\" PSF, 2x "
          "supersampling), same lenses, resized to the model's input size: another telescope.", _model_ii_instrument),
    Shift("theta_e_1pct", "Einstein radius drawn per image from U(0.99, 1.01)x the recipe's value, the rest "
          "of the scene equal: a 1 % larger or smaller ring.", _theta_e_jitter(0.01),
          _draws_already("theta_E_range", "theta_E")),
    Shift("theta_e_3pct", "Einstein radius drawn per image from U(0.97, 1.03)x the recipe's value, the rest "
          "of the scene equal.", _theta_e_jitter(0.03), _draws_already("theta_E_range", "theta_E")),
    Shift("theta_e_10pct", "Einstein radius drawn per image from U(0.90, 1.10)x the recipe's value, the rest "
          "of the scene equal.", _theta_e_jitter(0.10), _draws_already("theta_E_range", "theta_E")),
    Shift("source_size_narrow", "source R_sersic ~ U(0.2\", 0.3\") (training: 0.25\"): a mild spread of source "
          "sizes.", _narrow_source_sizes, _draws_already("source_R_sersic_range", "R_sersic")),
    Shift("lens_angle", "lens position angle uniform, its |e| kept (Model I: 0.1 along x): the same lens "
          "turned on the sky, the shear and source not.", _free_lens_angle),
    Shift("tnfw", "CDM subhalos as truncated NFWs of the same masses and places (model_i_tnfw for Model I, "
          "model_i_varied_tnfw for the varied population): extended instead of point-like.", _tnfw_subhalos,
          _without_subhalos),
    Shift("model_i", "Model I's one fixed lens (theta_E 1.28\", e1 0.1, shear 0.05 along x, one source shape), "
          "the base's instrument and drawing: for a model trained on another population.", _population("model_i"),
          _other_classes("model_i")),
    Shift(VARIED, "the varied lens population (theta_E U(1.0, 1.6)\", q U(0.7, 1), shear, source shape, "
          "exposure, PSF, Poisson subhalo counts): lenses as real ones vary.", _population(VARIED),
          _other_classes(VARIED)),
    Shift(ORIENTATION, "the unshifted test images rotated by a set of angles (resampled, cut to the inscribed "
          "disk): run on models trained without rotation augmentation, it shows the robustness the architecture "
          "alone gives, mixed with the blur of resampling.", None),
    Shift(ORIENTATION_SKY, "the scenes of the unshifted test images turned by a set of angles and rendered "
          "(no resampling, the instrument's own PSF and noise at every angle): orientation alone.", None),
)
SHIFTS: dict[str, Shift] = {s.name: s for s in _SHIFTS}


def shift_names() -> tuple[str, ...]:
    """Every shift name, simulation shifts first, the orientation shifts last."""
    return tuple(SHIFTS)


def get_shift(name: str) -> Shift:
    if name not in SHIFTS:
        raise ValueError(f"unknown shift {name!r}; choose from {', '.join(SHIFTS)} or 'all'")
    return SHIFTS[name]


def parse_shifts(spec: str | Iterable[str]) -> list[str]:
    """``"all"`` or comma-separated names (or a list) -> a checked list of names, in the given order."""
    names = [s.strip() for s in spec.split(",")] if isinstance(spec, str) else [str(s) for s in spec]
    names = [n for n in names if n]
    if names == ["all"]:
        return list(SHIFTS)
    for name in names:
        get_shift(name)
    if not names:
        raise ValueError("no shift named; use 'all' or a comma-separated list")
    return list(dict.fromkeys(names))


def shifted_config(base: str | SimulationConfig, name: str) -> SimulationConfig:
    """The test config of shift ``name`` for training config ``base`` (``"none"``: ``base`` itself)."""
    base = get_config(base)
    return base if name == NONE else get_shift(name).config(base)
