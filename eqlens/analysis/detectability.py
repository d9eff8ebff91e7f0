"""The ideal observer: how far a simulated lens's noiseless image lies from its closest alternative scene
under the recipe's own noise, the ceiling any classifier of that image works under.

For a lens with noiseless flux ``mu`` (counts/s per pixel), exposure ``t`` and background rms ``sigma``:

    D^2 = min over alt, A of  sum_{p in disk} (t mu_p - A t mu_alt,p)^2 / var_p,
    var = 2 t mu + (t sigma)^2            (the "deeplense" noise: Poisson counted twice, plus background)

over the pixels the network sees (the disk inscribed in the card's central crop, 81 px for the Model I
flagship). ``A`` is a free amplitude, solved in closed form per candidate
(``A = sum(a b / var) / sum(b^2 / var)``, a = t mu, b = t mu_alt), so per-image min-max normalisation
cannot be where the information lies. Under Gaussian noise, ``Phi(-D / 2)`` is the error rate between two
fully specified scenes. The alternatives (:data:`ALTERNATIVES`):

- ``D_sub``: the same scene with its subhalos removed (nothing refitted: one render);
- ``D_nosub``: a smooth lens (no subhalos), source centre free;
- ``D_nosub_theta_E``: the same, the main lens's theta_E free as well (as for any real lens);
- ``D_ax``: the closest axion scene, subhalos removed and a vortex added through the lens centre with the
  recipe's vortex mass: vortex angle, axion mass (which sets the line's length) and source centre free;
- ``D_ax_theta_E``: the same, theta_E free as well.

The searches start at the true source centre and theta_E. ``D_ax`` first renders a grid of vortex angles x
axion masses in one batch, then runs Nelder-Mead (scipy, bounded) from the grid's best point with the
config's own vortex (Model I: 100 point masses). Every search has a fixed budget of renders
(:class:`SearchBudget`), so the cost per lens is bounded: at most :meth:`SearchBudget.renders` noiseless
renders, about 2-4 s per 150 px Model I lens on one CPU thread in float64.

    from eqlens.analysis.detectability import lens_detectability, detectability_of_lenses
    result = lens_detectability(params, "model_i", crop=81)     # params: LensParameters of ONE lens
    result.D_ax, result.ax_fit                                   # distance, best vortex and source
    rows = detectability_of_lenses("model_i", seed, [1, 4, 7])   # one dict per lens
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

import numpy as np
import torch

from ..groups import circular_mask
from ..simulation import LensParameters, LensSimulator, SimulationConfig, get_config
from ..simulation.instrument import noise_variance
from ..simulation.sampling import unit_einstein_radius, vortex_half_length

ALTERNATIVES = ("sub", "nosub", "nosub_theta_E", "ax", "ax_theta_E")
"""The alternative scenes searched, each giving ``D_<name>`` (module docstring)."""


@dataclass(frozen=True)
class SearchBudget:
    """How hard each search looks: the grid of ``D_ax`` and the Nelder-Mead evaluations of each fit.

    ``source_step`` / ``theta_step`` (arcsec), ``angle_step`` (rad), ``mass_step`` (dex): the initial
    simplex's size around the start."""

    grid_angles: int = 12
    grid_log10_masses: int = 6
    nosub_evaluations: int = 80
    ax_evaluations: int = 200
    theta_evaluations: int = 120
    source_step: float = 0.01
    theta_step: float = 0.01
    angle_step: float = 0.15
    mass_step: float = 0.15

    def renders(self, alternatives: Sequence[str] = ALTERNATIVES) -> int:
        """The most noiseless renders one lens costs (the target included): a Nelder-Mead fit of n parameters
        stops after the iteration that reaches its evaluations, at most n + 1 later (:func:`_fit_cost`)."""
        smooth = ("nosub" in alternatives or "nosub_theta_E" in alternatives) * _fit_cost(self.nosub_evaluations, 2)
        axion = ("ax" in alternatives or "ax_theta_E" in alternatives) * (
            self.grid_angles * self.grid_log10_masses + _fit_cost(self.ax_evaluations, 4))
        return (1 + ("sub" in alternatives) + smooth + axion
                + ("nosub_theta_E" in alternatives) * _fit_cost(self.theta_evaluations, 3)
                + ("ax_theta_E" in alternatives) * _fit_cost(self.theta_evaluations, 5))


def _fit_cost(evaluations: int, parameters: int) -> int:
    """The most objective evaluations of :meth:`_Search.fit`: its ``maxfev`` plus one last iteration."""
    return _max_evaluations(evaluations, parameters) + parameters + 1


def _max_evaluations(evaluations: int, parameters: int) -> int:
    return max(evaluations, parameters + 2)


@dataclass
class Detectability:
    """``D`` of one lens against each alternative searched (NaN: not searched), the best-fit axion scene
    (``ax_fit``: vortex angle (rad), log10 axion mass (eV), source centre (arcsec), amplitude ``A``), the
    renders spent and the seconds taken."""

    D_sub: float = math.nan
    D_nosub: float = math.nan
    D_nosub_theta_E: float = math.nan
    D_ax: float = math.nan
    D_ax_theta_E: float = math.nan
    ax_fit: dict = field(default_factory=dict)
    renders: int = 0
    seconds: float = 0.0

    def to_dict(self) -> dict:
        return asdict(self)


def disk_mask(image_size: int, crop: int | None = None, device=None) -> torch.Tensor:
    """``[H, H]`` bool: the disk inscribed in the central ``crop`` window of a native image (the window
    starts at ``(H - crop) // 2``, as :func:`eqlens.data.transforms.center_crop` cuts it); ``crop=None``:
    the disk inscribed in the whole frame."""
    crop = image_size if crop is None else int(crop)
    if not 1 <= crop <= image_size:
        raise ValueError(f"a {crop} px crop does not fit {image_size} px images")
    top = (image_size - crop) // 2
    mask = torch.zeros(image_size, image_size, dtype=torch.bool, device=device)
    mask[top:top + crop, top:top + crop] = circular_mask(crop, crop, device=device) > 0
    return mask


def whitened_distance(flux: torch.Tensor, alternatives: torch.Tensor, exposure, background_rms,
                      mask: torch.Tensor, noise_model: str = "deeplense") -> tuple[torch.Tensor, torch.Tensor]:
    """``(D [N], A [N])``: the whitened distance between the noiseless ``flux [H, W]`` (counts/s per pixel)
    and each of ``alternatives [N, H, W]`` scaled by its best amplitude ``A``, over the pixels of ``mask``,
    under the noise variance of ``flux`` (:func:`eqlens.simulation.instrument.noise_variance`)."""
    t = torch.as_tensor(exposure, dtype=torch.float64).reshape(1)
    sigma = torch.as_tensor(background_rms, dtype=torch.float64).reshape(1)
    flux = flux.to(torch.float64)
    var = noise_variance(flux[None], t, sigma, noise_model)[0][mask]  # [P]
    a = (t * flux)[mask]  # [P]
    b = (t * alternatives.to(torch.float64))[:, mask]  # [N, P]
    amplitude = (b * a).div(var).sum(-1) / b.square().div(var).sum(-1).clamp(min=1e-300)
    residual = a[None] - amplitude[:, None] * b
    return residual.square().div(var).sum(-1).sqrt(), amplitude


def _repeat(params: LensParameters, n: int) -> LensParameters:
    return params.select([0] * n)


def _smooth(params: LensParameters) -> LensParameters:
    """The scene without substructure: no subhalos (their slots deflect nothing) and no vortex."""
    zero = torch.zeros_like(params.subhalo_theta_E)
    return params.replace(subhalo_theta_E=zero, subhalo_mass=torch.zeros_like(params.subhalo_mass),
                          n_subhalos=torch.zeros_like(params.n_subhalos),
                          vortex_theta_E=torch.zeros_like(params.vortex_theta_E),
                          log10_axion_mass=torch.full_like(params.log10_axion_mass, math.nan))


def _with_vortex(params: LensParameters, config: SimulationConfig, angle: torch.Tensor,
                 log10_mass: torch.Tensor) -> LensParameters:
    """The smooth scenes ``params [N]`` with the recipe's vortex through the lens centre at ``angle [N]``
    (rad) for axion masses ``10**log10_mass [N]`` eV."""
    dtype = params.theta_E.dtype
    angle, log10_mass = angle.to(dtype), log10_mass.to(dtype)
    theta_v = torch.full_like(angle, unit_einstein_radius(config) * math.sqrt(config.vortex_mass))
    return params.replace(vortex_theta_E=theta_v, vortex_half_length=vortex_half_length(config, log10_mass),
                          vortex_angle=angle, log10_axion_mass=log10_mass,
                          vortex_center_x=params.lens_center_x.clone(), vortex_center_y=params.lens_center_y.clone())


class _Search:
    """One lens: its noiseless target and the distance of any candidate scene, counting renders."""

    def __init__(self, sim: LensSimulator, params: LensParameters, mask: torch.Tensor):
        self.sim, self.params, self.mask = sim, params, mask
        self.flux = sim.render(params)[0]
        self.renders = 1

    def distance(self, candidates: LensParameters) -> tuple[torch.Tensor, torch.Tensor]:
        self.renders += candidates.batch_size
        p = self.params
        return whitened_distance(self.flux, self.sim.render(candidates), p.exposure, p.background_rms, self.mask,
                                 self.sim.config.noise_model)

    def scene(self, smooth: LensParameters, x: np.ndarray, names: Sequence[str]) -> LensParameters:
        """``smooth`` (one scene) with the fitted values ``x`` set: names among source_x, source_y, theta_E,
        angle, log10_mass."""
        value = dict(zip(names, (torch.tensor([float(v)], dtype=torch.float64) for v in x), strict=True))
        p = smooth.replace(**{k: v.to(smooth.theta_E.dtype) for k, v in
                              (("source_center_x", value.get("source_x")), ("source_center_y", value.get("source_y")),
                               ("theta_E", value.get("theta_E"))) if v is not None})
        if "angle" in value:
            p = _with_vortex(p, self.sim.config, value["angle"], value["log10_mass"])
        return p

    def fit(self, smooth: LensParameters, start: dict, steps: dict, bounds: dict,
            evaluations: int) -> tuple[float, dict]:
        """Bounded Nelder-Mead over the parameters of ``start`` (name -> value) from ``start``: ``(D, best)``."""
        from scipy.optimize import minimize

        names = list(start)
        x0 = np.array([start[n] for n in names], dtype=np.float64)
        simplex = np.vstack([x0] + [x0 + np.eye(len(names))[i] * steps[n] for i, n in enumerate(names)])
        lo = np.array([bounds[n][0] for n in names])
        hi = np.array([bounds[n][1] for n in names])
        simplex = np.clip(simplex, lo, hi)

        def objective(x):
            return float(self.distance(self.scene(smooth, x, names))[0][0])

        result = minimize(objective, x0, method="Nelder-Mead", bounds=list(zip(lo, hi, strict=True)),
                          options={"maxfev": _max_evaluations(evaluations, len(names)), "initial_simplex": simplex,
                                   "xatol": 1e-4, "fatol": 1e-4})
        best = dict(zip(names, (float(v) for v in result.x), strict=True))
        return float(result.fun), best


def lens_detectability(params: LensParameters, config: str | SimulationConfig = "model_i", *, crop: int | None = 81,
                       budget: SearchBudget = SearchBudget(), alternatives: Sequence[str] = ALTERNATIVES,
                       simulator: LensSimulator | None = None) -> Detectability:
    """:class:`Detectability` of ONE lens (``params``: a batch of one scene, e.g. ``sim.sample(seed, [i])``)
    of ``config`` against each of ``alternatives`` (:data:`ALTERNATIVES`), over the disk of the central
    ``crop`` (None: the whole frame), with at most ``budget.renders(alternatives)`` renders.

    The target may be any scene (an axion lens gives the positive control: ``D_ax`` near 0). Renders in
    float64 on the CPU unless ``simulator`` (of ``config``) is given."""
    unknown = [a for a in alternatives if a not in ALTERNATIVES]
    if unknown or params.batch_size != 1:
        raise ValueError(f"one lens and alternatives among {ALTERNATIVES}; got {params.batch_size} lenses, {unknown}")
    config = get_config(config)
    sim = simulator or LensSimulator(config, dtype=torch.float64)
    params = params.to(device=sim.device, dtype=sim.dtype)
    started = time.process_time()
    search = _Search(sim, params, disk_mask(config.image_size, crop, sim.device))
    smooth = _smooth(params)
    out = Detectability()
    truth = {"source_x": float(params.source_center_x[0]), "source_y": float(params.source_center_y[0]),
             "theta_E": float(params.theta_E[0])}
    w = config.source_center_half_width + 0.2
    bounds = {"source_x": (-w, w), "source_y": (-w, w), "theta_E": (0.8 * truth["theta_E"], 1.2 * truth["theta_E"]),
              "angle": (-10.0, 10.0), "log10_mass": config.log10_axion_mass_range}
    steps = {"source_x": budget.source_step, "source_y": budget.source_step, "theta_E": budget.theta_step,
             "angle": budget.angle_step, "log10_mass": budget.mass_step}
    source = {k: truth[k] for k in ("source_x", "source_y")}
    if "sub" in alternatives:
        out.D_sub = float(search.distance(smooth)[0][0])
    if "nosub" in alternatives or "nosub_theta_E" in alternatives:
        d, best = search.fit(smooth, source, steps, bounds, budget.nosub_evaluations)
        if "nosub" in alternatives:
            out.D_nosub = d
        if "nosub_theta_E" in alternatives:
            out.D_nosub_theta_E, _ = search.fit(smooth, {**best, "theta_E": truth["theta_E"]}, steps, bounds,
                                                budget.theta_evaluations)
            out.D_nosub_theta_E = min(out.D_nosub_theta_E, d)  # theta_E free can only come closer
    if "ax" in alternatives or "ax_theta_E" in alternatives:
        start, grid_d = _axion_grid(search, smooth, config, budget)
        d, best = search.fit(smooth, {**start, **source}, steps, bounds, budget.ax_evaluations)
        d, best = min((d, best), (grid_d, {**start, **source}), key=lambda t: t[0])
        if "ax" in alternatives:
            out.D_ax = d
        final = best
        if "ax_theta_E" in alternatives:
            d_theta, best_theta = search.fit(smooth, {**best, "theta_E": truth["theta_E"]}, steps, bounds,
                                             budget.theta_evaluations)
            out.D_ax_theta_E = min(d_theta, d)
            final = best_theta if d_theta < d else best
        scene = search.scene(smooth, np.array(list(final.values())), list(final))
        amplitude = float(search.distance(scene)[1][0])
        search.renders -= 1  # the amplitude's render is bookkeeping, not search
        out.ax_fit = {**final, "angle": float(final["angle"]) % math.pi, "amplitude": amplitude}
    out.renders = search.renders
    out.seconds = time.process_time() - started
    return out


def _axion_grid(search: _Search, smooth: LensParameters, config: SimulationConfig,
                budget: SearchBudget) -> tuple[dict, float]:
    """The best of a grid of vortex angles in [0, pi) (a centred line is symmetric under a half turn) x
    axion masses over the config's range, at the true source: ``({"angle", "log10_mass"}, D)``."""
    lo, hi = config.log10_axion_mass_range
    angles = torch.arange(budget.grid_angles, dtype=torch.float64) * (math.pi / budget.grid_angles)
    masses = torch.linspace(lo, hi, budget.grid_log10_masses, dtype=torch.float64)
    a, m = torch.meshgrid(angles, masses, indexing="ij")
    candidates = _with_vortex(_repeat(smooth, a.numel()), config, a.reshape(-1), m.reshape(-1))
    d, _ = search.distance(candidates)
    k = int(torch.argmin(d))
    return {"angle": float(a.reshape(-1)[k]), "log10_mass": float(m.reshape(-1)[k])}, float(d[k])


def detectability_of_lenses(config: str | SimulationConfig, seed: int, indices: Sequence[int], *,
                            crop: int | None = 81, budget: SearchBudget = SearchBudget(),
                            alternatives: Sequence[str] = ALTERNATIVES, labels=None, on_lens=None) -> list[dict]:
    """:func:`lens_detectability` of simulator images ``indices`` of ``seed`` (labels: ``index % C`` unless
    given): one dict per lens with ``index``, ``label`` and the :class:`Detectability` fields.
    ``on_lens(row)`` is called with each lens's dict as it finishes (a long run can save as it goes)."""
    config = get_config(config)
    sim = LensSimulator(config, dtype=torch.float64)
    params = sim.sample(seed, list(indices), labels)
    rows = []
    for k, index in enumerate(indices):
        one = params.select([k])
        result = lens_detectability(one, config, crop=crop, budget=budget, alternatives=alternatives, simulator=sim)
        rows.append({"index": int(index), "label": config.class_names[int(one.labels[0])], **result.to_dict()})
        if on_lens is not None:
            on_lens(rows[-1])
    return rows


# ------------------------------------------------------------------------------ accuracy against D

D_AX_BINS = (0.0, 8.0, 10.0, 12.0, 15.0, 20.0, math.inf)
"""The reference's D_ax bins: < 8, 8-10, 10-12, 12-15, 15-20, > 20."""


def error_rate_by_distance(distances: Sequence[float], correct: Sequence[bool],
                           edges: Sequence[float] = D_AX_BINS) -> list[dict]:
    """Per bin ``[lo, hi)`` of ``distances``: ``{"lo", "hi", "n", "errors", "error_rate", "se"}`` (binomial
    s.e.; NaN for an empty bin)."""
    d = np.asarray(distances, dtype=np.float64)
    ok = np.asarray(correct, dtype=bool)
    rows = []
    for lo, hi in zip(edges[:-1], edges[1:], strict=True):
        inside = (d >= lo) & (d < hi)
        n = int(inside.sum())
        errors = int((~ok[inside]).sum())
        rate = errors / n if n else math.nan
        rows.append({"lo": float(lo), "hi": float(hi), "n": n, "errors": errors, "error_rate": rate,
                     "se": math.sqrt(rate * (1 - rate) / n) if n else math.nan})
    return rows


def ceiling_estimate(d_ax: Sequence[float], other_class_accuracy: Sequence[float], lost_below: float = 7.0,
                     half_lost_below: float = 10.0) -> dict:
    """The reference's ceiling of balanced accuracy: CDM lenses with ``D_ax < lost_below`` count as lost and
    half of those in ``[lost_below, half_lost_below)``; the other classes keep the given accuracies (the
    classifier's own, the worst case). Returns ``{"ceiling", "ceiling_se", "cdm_ceiling", "cdm_se",
    "lost_share", "half_lost_share", "n"}``; the s.e. are binomial over the ``n`` CDM lenses (the other
    classes' accuracies taken as exact)."""
    d = np.asarray(d_ax, dtype=np.float64)
    n = int(d.size)
    lost = float((d < lost_below).mean()) if n else math.nan
    half = float(((d >= lost_below) & (d < half_lost_below)).mean()) if n else math.nan
    cdm = 1.0 - lost - 0.5 * half
    k = 1 + len(other_class_accuracy)
    se = math.sqrt(cdm * (1 - cdm) / n) if n else math.nan
    return {"ceiling": (cdm + sum(other_class_accuracy)) / k, "ceiling_se": se / k, "cdm_ceiling": cdm,
            "cdm_se": se, "lost_share": lost, "half_lost_share": half, "n": n}
