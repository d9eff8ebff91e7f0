"""How much a lens image can say about a physical parameter, before any network is trained.

For a scene with parameters ``p`` and the same scene with one parameter changed, ``p'``, the
ideal observer (who knows every other parameter and the noise model) tells the two images apart
with the matched-filter signal-to-noise

    S/N = sqrt( sum_pixels (t f'(x) - t f(x))^2 / Var[counts(x)] )

where ``f`` is the noiseless flux (counts/s per pixel, PSF included), ``t`` the exposure and
``Var`` the simulator's own noise variance at the reference image
(:func:`eqlens.simulation.instrument.noise_variance`). S/N < ~1 means the change is buried in the
noise for every estimator, a trained network included; it bounds what regression can reach.
Min-max normalisation of the inputs does not change it (signal and noise scale together).

:func:`axion_mass_signal` applies this to the axion mass of the vortex class: the mass sets the
vortex line's length at fixed total mass (:func:`eqlens.simulation.sampling.vortex_half_length`),
so heavy axions make short lines hidden inside the Einstein ring, which all look alike.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence

import torch

from ..simulation import LensParameters, LensSimulator, SimulationConfig, SimulationConfigError, get_config
from ..simulation.instrument import noise_variance
from ..simulation.sampling import vortex_half_length


def change_signal_to_noise(simulator: LensSimulator, reference: LensParameters,
                           changed: LensParameters) -> torch.Tensor:
    """Matched-filter S/N ``[B]`` of the difference between the noiseless images of ``changed`` and
    ``reference`` (the same scenes, some parameter changed), against the reference's noise."""
    flux = simulator.render(reference).double()  # [B, H, W], counts/s per pixel
    moved = simulator.render(changed).double()
    t = reference.exposure.double().reshape(-1, 1, 1)
    variance = noise_variance(flux, reference.exposure.double(), reference.background_rms.double(),
                              simulator.config.noise_model)
    tiny = torch.finfo(torch.float64).tiny  # a pixel without light or background carries no noise
    return ((t * (moved - flux)) ** 2 / variance.clamp(min=tiny)).sum(dim=(-2, -1)).sqrt()


def with_axion_mass(params: LensParameters, config: SimulationConfig, log10_mass: float) -> LensParameters:
    """The same scenes with every vortex at axion mass ``10^log10_mass`` eV: the line's length follows
    the mass, its total mass, angle and centre stay. Every scene must carry a vortex."""
    if bool(torch.isnan(params.log10_axion_mass).any()):
        raise SimulationConfigError("with_axion_mass needs scenes of the axion (vortex) class")
    log10_m = torch.full_like(params.log10_axion_mass, float(log10_mass))
    return dataclasses.replace(params, log10_axion_mass=log10_m,
                               vortex_half_length=vortex_half_length(config, log10_m))


def axion_mass_signal(config: str | SimulationConfig = "model_i", log10_masses: Sequence[float] | None = None,
                      reference: float | None = None, n: int = 64, seed: int = 0,
                      device: str | torch.device = "cpu") -> dict:
    """S/N of changing the axion mass from ``reference`` (default: the heaviest of the config's range)
    to each of ``log10_masses`` (default: 9 steps over the range), for ``n`` axion scenes of data set
    ``seed``. Returns ``{"config", "vortex_model", "reference", "n", "rows": [{"log10_mass",
    "half_length_arcsec", "snr_median", "snr_q16", "snr_q84", "fraction_above_3"}]}``."""
    cfg = get_config(config) if isinstance(config, str) else config
    kinds = cfg.class_names
    if "axion" not in kinds:
        raise SimulationConfigError(f"config {cfg.name!r} has no axion class (classes: {', '.join(kinds)})")
    low, high = cfg.log10_axion_mass_range
    masses = [low + (high - low) * i / 8 for i in range(9)] if log10_masses is None else list(log10_masses)
    reference = high if reference is None else float(reference)
    if n < 1:
        raise SimulationConfigError(f"n must be at least 1, got {n}")
    simulator = LensSimulator(cfg, device=device)
    labels = torch.full((n,), kinds.index("axion"), dtype=torch.int64)
    scenes = simulator.sample(seed, list(range(n)), labels=labels)
    base = with_axion_mass(scenes, cfg, reference)
    rows = []
    for log10_mass in masses:
        snr = change_signal_to_noise(simulator, base, with_axion_mass(scenes, cfg, log10_mass)).cpu()
        q16, q50, q84 = torch.quantile(snr, torch.tensor([0.16, 0.5, 0.84], dtype=snr.dtype)).tolist()
        rows.append({"log10_mass": float(log10_mass),
                     "half_length_arcsec": float(vortex_half_length(cfg, torch.tensor(float(log10_mass)))),
                     "snr_median": q50, "snr_q16": q16, "snr_q84": q84,
                     "fraction_above_3": float((snr > 3).double().mean())})
    return {"config": cfg.name, "vortex_model": cfg.vortex_model, "vortex_form": cfg.vortex_form,
            "reference": reference, "n": n, "rows": rows}


def markdown_table(result: dict) -> str:
    """The rows of :func:`axion_mass_signal` as one markdown table."""
    form = f"{result['vortex_form']}, " if result.get("vortex_form") else ""
    lines = [f"S/N of changing the axion mass from 10^{result['reference']:g} eV ({result['config']}, {form}"
             f"{result['n']} axion scenes; median and 16-84 % range over scenes)", "",
             "| log10 m_a [eV] | vortex half-length | S/N median | S/N 16-84 % | scenes with S/N > 3 |",
             "|---:|---:|---:|---:|---:|"]
    for r in result["rows"]:
        lines.append(f"| {r['log10_mass']:.2f} | {r['half_length_arcsec']:.3f}\" | {r['snr_median']:.1f} | "
                     f"{r['snr_q16']:.1f}-{r['snr_q84']:.1f} | {r['fraction_above_3']:.0%} |")
    return "\n".join(lines)


def regression_r2_bound(result: dict, threshold: float = 3.0) -> float:
    """A rough ceiling on R^2 for a uniform prior over the rows' masses: masses whose median S/N
    against the reference is under ``threshold`` are taken as indistinguishable from it and from each
    other (the best estimate is their mean), the others as known exactly."""
    masses = torch.tensor([r["log10_mass"] for r in result["rows"]], dtype=torch.float64)
    hidden = torch.tensor([r["snr_median"] < threshold for r in result["rows"]])
    total = masses.var(unbiased=False)
    if not math.isfinite(float(total)) or float(total) == 0.0:
        return math.nan
    residual = masses[hidden].var(unbiased=False) * hidden.double().mean() if int(hidden.sum()) > 1 else 0.0
    return float(1.0 - residual / total)
