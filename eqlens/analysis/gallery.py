"""A gallery of simulated lenses chosen by their truth, for teaching and research: every choice is computed.

A candidate is one lens ``(config, class, seed)``: image 0 of the simulator's data set ``seed`` with that class,
the lens the app's "Simulate" selector shows for the seed (the same seed gives the same main lens, source and
instrument in every class: only the substructure differs). The default candidates, seeds 1000-1299, lie outside
the training stream of the shipped checkpoints (data seed 0 trains on simulator seed 0).

Sections (:func:`build_gallery`), each a deterministic function of its candidates:

* :func:`class_section`: the seeds whose source sits closest to the lens centre (full Einstein rings), each
  shown in every class;
* :func:`vortex_section`: the axion lenses with the longest and the shortest vortex lines;
* :func:`subhalo_section`: the CDM lenses with the most subhalo mass near the ring
  (:func:`.error_anatomy.mass_near_ring`, where substructure bends the arcs);
* :func:`error_section`: the lenses a model gets wrong (most confident first), each with the scene feature that
  explains it best, as its percentile among the candidates of its class (e.g. little subhalo mass near the ring);
* :func:`population_section`: the varied population (``model_i_varied``) at its extremes (smallest and largest
  theta_E, strongest shear, shortest exposure, widest PSF), each seed in every class, with the model's reading.

Truth-only sections sample scenes without rendering (about 1 ms a lens); the sections that ask a model render
the lenses and call ``probabilities(images [N, H, W]) -> [N, K]``. Everything is plain JSON (:meth:`Section.to_dict`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from ..simulation.scene import MASS_UNIT
from .error_anatomy import RING_HALF_WIDTH_ARCSEC, SCENE_FEATURES, feature_table

CANDIDATE_SEEDS = range(1000, 1300)
IMAGE_INDEX = 0  # every candidate is image 0 of its seed's data set, as the app simulates a lens
Probabilities = Callable[[object], np.ndarray]
"""``probabilities(images [N, H, W] raw counts) -> [N, K]`` class probabilities (e.g. eqlens.checkpoint.predict)."""

_FEATURES = {f.name: f for f in SCENE_FEATURES}
MASS_FEATURES = ("mass_near_ring", "mass_inside_ring", "subhalo_mass_total", "subhalo_mass_largest")  # recipe units
# The scene features that can explain a miss, per kind of substructure the true class has (SUBSTRUCTURE).
EXPLAINING = {"subhalos": ("mass_near_ring", "mass_inside_ring", "subhalo_mass_largest", "source_offset", "exposure"),
              "vortex": ("vortex_length", "source_offset", "exposure"),
              "none": ("source_offset", "exposure")}
# (truth key, which end, words, unit): the varied population's draws, read from LensTruth.for_image
VARIED_EXTREMES = (("theta_E", "min", "the smallest Einstein radius", "arcsec"),
                   ("theta_E", "max", "the largest Einstein radius", "arcsec"),
                   ("shear_modulus", "max", "the strongest external shear |gamma|", ""),
                   ("exposure", "min", "the shortest exposure", "s"),
                   ("psf_fwhm", "max", "the widest PSF FWHM", "arcsec"))


@dataclass(frozen=True)
class Pick:
    """One chosen lens: where it comes from, one line on why it was chosen, and the numbers behind that line
    (``values``: feature name -> value, masses in recipe units with a ``_physical`` twin in Msun), plus a
    model's ``probabilities`` over ``class_names`` when the section asked one."""

    config: str
    class_name: str
    class_index: int
    seed: int
    reason: str
    values: dict = field(default_factory=dict)
    probabilities: tuple[float, ...] | None = None

    def predicted(self, class_names: Sequence[str]) -> str | None:
        return None if self.probabilities is None else class_names[int(np.argmax(self.probabilities))]

    def to_dict(self) -> dict:
        out = dict(config=self.config, class_name=self.class_name, class_index=self.class_index, seed=self.seed,
                   reason=self.reason, values={k: _round(v) for k, v in self.values.items()})
        if self.probabilities is not None:
            out["probabilities"] = [_round(p) for p in self.probabilities]
        return out

    @classmethod
    def from_dict(cls, data: Mapping) -> Pick:
        probs = data.get("probabilities")
        return cls(str(data["config"]), str(data["class_name"]), int(data["class_index"]), int(data["seed"]),
                   str(data["reason"]), dict(data.get("values") or {}), None if probs is None else tuple(probs))


@dataclass(frozen=True)
class Section:
    """A titled group of picks with a paragraph that says what they show and how they were chosen."""

    key: str
    title: str
    text: str
    picks: tuple[Pick, ...]

    def to_dict(self) -> dict:
        return dict(key=self.key, title=self.title, text=self.text, picks=[p.to_dict() for p in self.picks])

    @classmethod
    def from_dict(cls, data: Mapping) -> Section:
        return cls(str(data["key"]), str(data["title"]), str(data["text"]),
                   tuple(Pick.from_dict(p) for p in data["picks"]))


def _round(value: float) -> float:
    return float(f"{float(value):.6g}")


def scene_truth(config_name: str, class_index: int, seed: int) -> dict:
    """The truth of candidate ``(config, class, seed)`` (``LensTruth.for_image``), sampled without rendering."""
    from ..simulation import LensTruth, get_config, sample_parameters

    config = get_config(config_name)
    params = sample_parameters(config, int(seed), [IMAGE_INDEX], [int(class_index)])
    return LensTruth.from_parameters(params, config).for_image(0)


def candidate_truths(config_name: str, class_name: str, seeds: Sequence[int]) -> list[dict]:
    """One truth per seed for the class ``class_name`` of ``config_name``."""
    from ..simulation import get_config

    k = get_config(config_name).class_names.index(class_name)
    return [scene_truth(config_name, k, s) for s in seeds]


def _class_index(config_name: str, class_name: str) -> int:
    from ..simulation import get_config

    return get_config(config_name).class_names.index(class_name)


def _order(values: np.ndarray, largest: bool) -> np.ndarray:
    """Indices of the finite ``values``, most extreme first (ties by position: deterministic)."""
    finite = np.flatnonzero(np.isfinite(values))
    key = -values[finite] if largest else values[finite]
    return finite[np.lexsort((finite, key))]


def _with_physical(name: str, value: float, factor: float) -> dict:
    out = {name: float(value)}
    if name in MASS_FEATURES:
        out[f"{name}_physical"] = float(value) * factor
    return out


def _describe(name: str, value: float, factor: float) -> str:
    feature = _FEATURES[name]
    if name in MASS_FEATURES:
        return f"{feature.label} {value:.3g} {MASS_UNIT} ({value * factor:.3g} physical Msun)"
    return f"{feature.label} {value:.3g} {feature.unit}".rstrip()


def class_section(config_name: str = "model_i", seeds: Sequence[int] = CANDIDATE_SEEDS, n: int = 3) -> Section:
    """The ``n`` seeds whose source lies closest to the lens centre (the fullest Einstein rings), each in every
    class, in class order per seed: one lens and source, three kinds of dark matter."""
    from ..simulation import get_config

    config = get_config(config_name)
    seeds = list(seeds)
    truths = candidate_truths(config_name, config.class_names[0], seeds)
    offsets = feature_table(truths)["source_offset"]
    picks = []
    for j in _order(offsets, largest=False)[:n]:
        for k, name in enumerate(config.class_names):
            picks.append(Pick(config_name, name, k, seeds[j], f"seed {seeds[j]}: source {offsets[j]:.3f}\" from the "
                              "lens centre", {"source_offset": float(offsets[j])}))
    return Section("classes", "Each class, on the same lens", (
        f"The {n} candidate seeds (of {len(seeds)}) whose source lies closest to the lens centre, so the arcs close "
        "into a ring; each seed is shown in every class. A seed fixes the main lens, the source and the instrument "
        "(and its noise draws): across a row only the substructure changes."), tuple(picks))


def vortex_section(config_name: str = "model_i", seeds: Sequence[int] = CANDIDATE_SEEDS, n: int = 4) -> Section:
    """The ``n`` axion lenses with the longest vortex lines, then the ``n`` with the shortest."""
    seeds = list(seeds)
    k = _class_index(config_name, "axion")
    truths = candidate_truths(config_name, "axion", seeds)
    table = feature_table(truths)
    length, log_mass = table["vortex_length"], table["log10_axion_mass"]
    picks = []
    for largest, word in ((True, "long"), (False, "short")):
        for j in _order(length, largest)[:n]:
            picks.append(Pick(config_name, "axion", k, seeds[j], f"{word} vortex: {length[j]:.3f}\" "
                              f"(m_a = 10^{log_mass[j]:.2f} eV)",
                              {"vortex_length": float(length[j]), "log10_axion_mass": float(log_mass[j])}))
    return Section("vortices", "Long and short vortices", (
        f"Axion lenses: the {n} longest vortex lines of {len(seeds)} candidates, then the {n} shortest. The line's "
        "half-length grows as 1 / m_a at a fixed total mass, so light axions draw long, faint lines across the "
        "ring and heavy ones a short, dense segment near the centre."), tuple(picks))


def subhalo_section(config_name: str = "model_i", seeds: Sequence[int] = CANDIDATE_SEEDS, n: int = 6) -> Section:
    """The ``n`` CDM lenses with the most subhalo mass within the ring's half width of the Einstein ring."""
    seeds = list(seeds)
    k = _class_index(config_name, "cdm")
    truths = candidate_truths(config_name, "cdm", seeds)
    table = feature_table(truths)
    near, largest = table["mass_near_ring"], table["subhalo_mass_largest"]
    factor = float(truths[0]["physical_mass_factor"])
    picks = []
    for j in _order(near, largest=True)[:n]:
        values = {**_with_physical("mass_near_ring", near[j], factor),
                  **_with_physical("subhalo_mass_largest", largest[j], factor)}
        picks.append(Pick(config_name, "cdm", k, seeds[j], _describe("mass_near_ring", near[j], factor), values))
    return Section("subhalos", "Massive subhalos near the arcs", (
        f"CDM lenses with the most subhalo mass within {RING_HALF_WIDTH_ARCSEC}\" of the Einstein ring (of "
        f"{len(seeds)} candidates): there a subhalo bends the arcs themselves, a kink or a small extra image, "
        f"where one far inside or outside the ring barely shows. Masses in {MASS_UNIT} and in physical Msun "
        f"(x {factor:.3f}, eqlens.simulation.cosmology.physical_mass_factor)."), tuple(picks))


def render_candidates(config_name: str, pairs: Sequence[tuple[int, int]]):
    """Raw count images ``[N, H, W]`` (float32) of candidates ``(class_index, seed)``, as the app renders them."""
    import torch

    from ..simulation import LensSimulator

    simulator = LensSimulator(config_name, device="cpu", dtype=torch.float32)
    images = [simulator.simulate(int(seed), [IMAGE_INDEX], labels=[int(k)]).images for k, seed in pairs]
    return torch.cat(images) if images else torch.zeros(0)


def percentile_of(values: np.ndarray, value: float) -> float:
    """The share (0-1) of the finite ``values`` below ``value`` (ties count half)."""
    v = values[np.isfinite(values)]
    return float(((v < value).sum() + 0.5 * (v == value).sum()) / max(v.size, 1))


def explain_miss(truth: Mapping, class_values: Mapping[str, np.ndarray]) -> tuple[str, dict]:
    """Why a lens may be missed: of the features :data:`EXPLAINING` names for its kind of substructure (in that
    order), the first where the lens lies in the outer quarters of its class's candidates (``class_values``:
    feature -> values), else the most extreme one, as ``(sentence, values)``; the values hold each such feature,
    its percentile (0-1) and, for masses, physical Msun."""
    from ..simulation import SUBSTRUCTURE

    factor = float(truth.get("physical_mass_factor") or 1.0)
    values, best, first = {}, None, None
    for name in EXPLAINING[SUBSTRUCTURE[truth["class_name"]]]:
        value = _FEATURES[name].value(truth)
        if not math.isfinite(value):
            continue
        share = percentile_of(class_values[name], value)
        values.update(_with_physical(name, value, factor))
        values[f"{name}_percentile"] = share
        if first is None and abs(share - 0.5) >= 0.25:
            first = (name, share, value)
        if best is None or abs(share - 0.5) > abs(best[1] - 0.5):
            best = (name, share, value)
    if best is None:
        return "no scene feature explains it", values
    name, share, value = first or best
    side = (f"lower than {math.floor(100 * (1 - share))}%" if share < 0.5
            else f"higher than {math.floor(100 * share)}%")
    return f"{_describe(name, value, factor)}: {side} of the {truth['class_name']} candidates", values


def error_section(probabilities: Probabilities, model_label: str, config_name: str = "model_i",
                  seeds: Sequence[int] = CANDIDATE_SEEDS, n: int = 8) -> Section:
    """The lenses (every class of every seed) ``probabilities`` gets wrong, the most confident first, at most ``n``
    and at most ``ceil(n / 2)`` of one true class, each explained by :func:`explain_miss`."""
    from ..simulation import get_config

    config = get_config(config_name)
    seeds = list(seeds)
    pairs = [(k, s) for k in range(config.num_classes) for s in seeds]
    probs = np.asarray(probabilities(render_candidates(config_name, pairs)), dtype=np.float64)
    truths = {k: candidate_truths(config_name, name, seeds) for k, name in enumerate(config.class_names)}
    tables = {k: feature_table(t) for k, t in truths.items()}
    labels = np.array([k for k, _ in pairs])
    said = probs.argmax(1)
    wrong = np.flatnonzero(said != labels)
    order = wrong[np.lexsort((wrong, -probs[wrong, said[wrong]]))]
    picks, per_class = [], {}
    for row in order:
        k, seed = pairs[row]
        if len(picks) == n or per_class.get(k, 0) >= math.ceil(n / 2):
            continue
        per_class[k] = per_class.get(k, 0) + 1
        truth = truths[k][seeds.index(seed)]
        why, values = explain_miss(truth, tables[k])
        said_name = config.class_names[said[row]]
        picks.append(Pick(config_name, config.class_names[k], k, seed,
                          f"said {said_name} ({probs[row, said[row]]:.2f}); {why}", values, tuple(probs[row])))
    accuracy = float((said == labels).mean())
    return Section("errors", f"Lenses {model_label} gets wrong, and why", (
        f"{model_label} on {len(pairs)} lenses ({len(seeds)} seeds x {config.num_classes} classes of {config_name}): "
        f"accuracy {accuracy:.3f}, {wrong.size} wrong. Shown: the most confident mistakes (at most "
        f"{math.ceil(n / 2)} per true class), each with the scene feature where it is most unusual for its class "
        "(its percentile among the candidates): subhalo mass near the ring for CDM, the vortex's length for axion, "
        "the source offset or the exposure otherwise."), tuple(picks))


def population_section(probabilities: Probabilities | None = None, model_label: str = "the model",
                       seeds: Sequence[int] = CANDIDATE_SEEDS, config_name: str = "model_i_varied") -> Section:
    """For each of :data:`VARIED_EXTREMES` the seed of ``config_name`` at that extreme, in every class (with
    ``probabilities`` of each, when given): how far the varied population reaches beyond Model I's fixed recipe."""
    from ..simulation import get_config

    config = get_config(config_name)
    seeds = list(seeds)
    truths = candidate_truths(config_name, config.class_names[0], seeds)  # lens, source, instrument: every class
    picks, used = [], set()
    for name, end, words, unit in VARIED_EXTREMES:
        values = np.array([float(t.get(name, math.nan)) for t in truths])
        j = next(int(i) for i in _order(values, largest=end == "max") if seeds[int(i)] not in used)
        used.add(seeds[j])
        for k, class_name in enumerate(config.class_names):
            picks.append(Pick(config_name, class_name, k, seeds[j], f"{words} {values[j]:.3g} {unit}".rstrip(),
                              {name: float(values[j])}))
    if probabilities is not None:
        probs = np.asarray(probabilities(render_candidates(config_name, [(p.class_index, p.seed) for p in picks])))
        picks = [Pick(p.config, p.class_name, p.class_index, p.seed, p.reason, p.values, tuple(map(float, row)))
                 for p, row in zip(picks, probs, strict=True)]
    reading = f" with {model_label}'s reading of each" if probabilities is not None else ""
    return Section("population", "Model I against the varied population", (
        f"Model I fixes the main lens (theta_E 1.2815\", q 0.82, shear 0.05), the source's shape and the PSF; "
        f"{config_name} draws them (theta_E U(1.0, 1.6)\", axis ratio, shear, source size and shape, exposure, PSF, "
        f"a Poisson number of subhalos). Its candidate seeds at the extremes of the draws, each in every class"
        f"{reading}: a model trained on Model I alone meets these scenes for the first time."), tuple(picks))


def build_gallery(probabilities: Probabilities | None = None, model_label: str = "the model",
                  seeds: Sequence[int] = CANDIDATE_SEEDS) -> dict:
    """Every section as JSON: ``{"seeds": [first, stop], "sections": [...]}``; the model sections only with
    ``probabilities``."""
    sections = [class_section(seeds=seeds), vortex_section(seeds=seeds), subhalo_section(seeds=seeds)]
    if probabilities is not None:
        sections.append(error_section(probabilities, model_label, seeds=seeds))
    sections.append(population_section(probabilities, model_label, seeds=seeds))
    return {"seeds": [min(seeds), max(seeds) + 1], "image_index": IMAGE_INDEX,
            "sections": [s.to_dict() for s in sections]}


__all__ = ["CANDIDATE_SEEDS", "EXPLAINING", "Pick", "Section", "build_gallery", "candidate_truths", "class_section",
           "error_section", "explain_miss", "percentile_of", "population_section", "render_candidates", "scene_truth",
           "subhalo_section", "vortex_section"]
