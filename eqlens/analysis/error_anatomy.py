"""Where a classifier's errors lie in the physics: error rate against the parameters of the simulated scene.

A simulated test lens carries its truth (``LensTruth.for_image``: subhalo positions and masses, the vortex's
end points, the axion mass, the exposure, ...). :data:`SCENE_FEATURES` turns one truth into a few numbers a
lensing researcher reads errors by: the subhalo mass within :data:`RING_HALF_WIDTH_ARCSEC` of the Einstein
ring (where substructure bends the arcs), the total and largest subhalo mass, the vortex's length, the axion
mass, the exposure, the source's offset from the lens centre. :func:`error_anatomy` bins the lenses of each
true class into quantiles of every feature that varies within that class and reports the error rate per bin
with its binomial standard error (:class:`ErrorRateBins`): e.g. a Model I flagship without ring means missed
30 % of the CDM lenses with the least subhalo mass near the ring and 2 % of those with the most
(docs/benchmarks.md).

Rotating a scene about the lens centre leaves every feature unchanged (they depend on radii and lengths
only), so the anatomy of an invariant model is the anatomy of its whole orbit.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from ..simulation.scene import MASS_UNIT

RING_HALF_WIDTH_ARCSEC = 0.3  # |r - theta_E| below this: a subhalo "near the ring" (the arcs' half width, ~6 px)


def _masses(truth: Mapping) -> np.ndarray:
    return np.asarray(truth.get("subhalo_masses") or [], dtype=np.float64)


def _radii(truth: Mapping) -> np.ndarray:
    positions = np.asarray(truth.get("subhalo_positions") or [], dtype=np.float64).reshape(-1, 2)
    return np.hypot(positions[:, 0], positions[:, 1])


def _has_subhalos(truth: Mapping) -> bool:
    return len(truth.get("subhalo_masses") or []) > 0


def mass_near_ring(truth: Mapping, half_width: float = RING_HALF_WIDTH_ARCSEC) -> float:
    """Total subhalo mass (recipe units) with ``|r - theta_E| < half_width`` arcsec; NaN without subhalos."""
    if not _has_subhalos(truth):
        return math.nan
    near = np.abs(_radii(truth) - float(truth["theta_E"])) < half_width
    return float(_masses(truth)[near].sum())


def mass_inside_ring(truth: Mapping, half_width: float = RING_HALF_WIDTH_ARCSEC) -> float:
    """Total subhalo mass (recipe units) with ``r < theta_E - half_width`` arcsec: inside the ring, where it adds
    to the enclosed mass (a larger, smoother ring) more than it bends the arcs; NaN without subhalos."""
    if not _has_subhalos(truth):
        return math.nan
    inside = _radii(truth) < float(truth["theta_E"]) - half_width
    return float(_masses(truth)[inside].sum())


def vortex_length(truth: Mapping) -> float:
    """Length of the vortex line (arcsec), NaN for a lens without one."""
    ends = truth.get("vortex_endpoints")
    if not ends:
        return math.nan
    (x0, y0), (x1, y1) = ends
    return float(math.hypot(x1 - x0, y1 - y0))


def _optional(value) -> float:
    return math.nan if value is None else float(value)


@dataclass(frozen=True)
class SceneFeature:
    """One number per lens, read from its truth dict: ``value(truth)`` (NaN where the lens has no such thing,
    e.g. a vortex length for a CDM lens)."""

    name: str
    label: str
    unit: str
    value: Callable[[Mapping], float]
    is_mass: bool = False  # in recipe units; ErrorRateBins.physical_factor converts its edges to physical Msun


SCENE_FEATURES: tuple[SceneFeature, ...] = (
    SceneFeature("mass_near_ring", f"subhalo mass within {RING_HALF_WIDTH_ARCSEC}\" of the Einstein ring",
                 MASS_UNIT, mass_near_ring, is_mass=True),
    SceneFeature("mass_inside_ring", "subhalo mass inside the ring", MASS_UNIT, mass_inside_ring, is_mass=True),
    SceneFeature("subhalo_mass_total", "subhalo mass, total", MASS_UNIT,
                 lambda t: float(_masses(t).sum()) if _has_subhalos(t) else math.nan, is_mass=True),
    SceneFeature("subhalo_mass_largest", "subhalo mass, largest", MASS_UNIT,
                 lambda t: float(_masses(t).max()) if _has_subhalos(t) else math.nan, is_mass=True),
    SceneFeature("subhalo_count", "number of subhalos", "",
                 lambda t: float(len(t.get("subhalo_masses") or [])) if t.get("class_name") in ("cdm", "sub")
                 else math.nan),
    SceneFeature("vortex_length", "vortex length", "arcsec", vortex_length),
    SceneFeature("log10_axion_mass", "log10 axion mass", "log10 eV", lambda t: _optional(t.get("log10_axion_mass"))),
    SceneFeature("exposure", "exposure", "s", lambda t: _optional(t.get("exposure"))),
    SceneFeature("source_offset", "source offset from the lens centre", "arcsec",
                 lambda t: float(math.hypot(*t["source_center"])) if t.get("source_center") is not None else math.nan),
    SceneFeature("theta_E", "Einstein radius", "arcsec", lambda t: _optional(t.get("theta_E"))),
    # the varied population's lens, source and instrument (constant in Model I, so never binned there)
    SceneFeature("lens_axis_ratio", "lens axis ratio q", "", lambda t: _optional(t.get("lens_axis_ratio"))),
    SceneFeature("shear_modulus", "external shear |gamma|", "", lambda t: _optional(t.get("shear_modulus"))),
    SceneFeature("source_R_sersic", "source Sersic radius", "arcsec", lambda t: _optional(t.get("source_R_sersic"))),
    SceneFeature("source_n_sersic", "source Sersic index", "", lambda t: _optional(t.get("source_n_sersic"))),
    SceneFeature("psf_fwhm", "PSF FWHM", "arcsec", lambda t: _optional(t.get("psf_fwhm"))),
)


def feature_table(truths: Sequence[Mapping]) -> dict[str, np.ndarray]:
    """``{feature name: values [N]}`` (float64, NaN where absent) for ``N`` truth dicts."""
    return {f.name: np.array([f.value(t) for t in truths], dtype=np.float64) for f in SCENE_FEATURES}


@dataclass(frozen=True)
class ErrorRateBins:
    """The lenses of one true class binned by one feature's quantiles.

    ``edges [B+1]`` (feature units; bin b holds ``edges[b] <= v <= edges[b+1]``, each lens in exactly one
    bin), ``counts [B]`` lenses and ``errors [B]`` misclassified ones per bin."""

    feature: SceneFeature
    class_name: str
    edges: np.ndarray
    counts: np.ndarray
    errors: np.ndarray
    physical_factor: float | None = None  # physical Msun per recipe unit, for a mass feature (else None)

    @property
    def physical_edges(self) -> np.ndarray | None:
        """A mass feature's bin edges in physical Msun ``[B+1]``; None for other features."""
        return None if self.physical_factor is None else self.edges * self.physical_factor

    @property
    def rate(self) -> np.ndarray:
        """Error rate per bin ``[B]``."""
        return self.errors / np.maximum(self.counts, 1)

    @property
    def stderr(self) -> np.ndarray:
        """Binomial standard error of :attr:`rate` per bin ``[B]``."""
        p = self.rate
        return np.sqrt(p * (1 - p) / np.maximum(self.counts, 1))

    @property
    def total_rate(self) -> float:
        return float(self.errors.sum() / max(int(self.counts.sum()), 1))

    def rows(self) -> list[dict]:
        """One plain dict per bin (for tables and CSV)."""
        return [dict(class_name=self.class_name, feature=self.feature.name, unit=self.feature.unit,
                     low=float(self.edges[b]), high=float(self.edges[b + 1]), lenses=int(self.counts[b]),
                     errors=int(self.errors[b]), error_rate=float(self.rate[b]), stderr=float(self.stderr[b]))
                for b in range(len(self.counts))]


def error_rate_bins(values: np.ndarray, wrong: np.ndarray, bins: int = 4) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Quantile bins of ``values [N]`` (NaN dropped) and the misclassified count in each.

    Returns ``(edges [B'+1], counts [B'], errors [B'])`` with ``B' <= bins`` (tied quantiles merge, so a
    feature with few distinct values gets fewer bins). Ties on an edge go to the lower bin, the largest value
    to the last."""
    if bins < 1:
        raise ValueError(f"bins must be at least 1, got {bins}")
    values, wrong = np.asarray(values, dtype=np.float64), np.asarray(wrong, dtype=bool)
    if values.shape != wrong.shape:
        raise ValueError(f"values {values.shape} and wrong {wrong.shape} differ in shape")
    keep = np.isfinite(values)
    values, wrong = values[keep], wrong[keep]
    if values.size == 0:
        return np.zeros(0), np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    edges = np.unique(np.quantile(values, np.linspace(0.0, 1.0, bins + 1)))
    if edges.size == 1:
        edges = np.array([edges[0], edges[0]])
    which = np.clip(np.searchsorted(edges, values, side="left") - 1, 0, edges.size - 2)
    counts = np.bincount(which, minlength=edges.size - 1)
    errors = np.bincount(which, weights=wrong, minlength=edges.size - 1).astype(np.int64)
    return edges, counts, errors


def error_anatomy(truths: Sequence[Mapping], labels, predicted, class_names: Sequence[str],
                  bins: int = 4) -> list[ErrorRateBins]:
    """Error rate by quantile bin of each scene feature, per true class.

    ``truths``: one truth dict per test lens (``SimulatedLensDataset.truths``), ``labels [N]`` and
    ``predicted [N]`` class indices into ``class_names``. A (class, feature) pair appears when the feature is
    defined for that class's lenses and varies among them (a fixed Einstein radius or a vortex length of CDM
    lenses says nothing), in class order, then :data:`SCENE_FEATURES` order."""
    labels, predicted = np.asarray(labels).astype(np.int64), np.asarray(predicted).astype(np.int64)
    if not (len(truths) == labels.shape[0] == predicted.shape[0]):
        raise ValueError(f"{len(truths)} truths, {labels.shape[0]} labels and {predicted.shape[0]} predictions")
    table = feature_table(truths)
    factors = {t.get("physical_mass_factor") for t in truths} - {None}
    factor = float(factors.pop()) if len(factors) == 1 else None
    result = []
    for k, name in enumerate(class_names):
        members = labels == k
        if not members.any():
            continue
        for feature in SCENE_FEATURES:
            values = table[feature.name][members]
            finite = values[np.isfinite(values)]
            if finite.size < 2 or np.ptp(finite) <= 1e-12 * max(1.0, float(np.abs(finite).max())):
                continue
            edges, counts, errors = error_rate_bins(values, predicted[members] != k, bins)
            result.append(ErrorRateBins(feature, name, edges, counts, errors,
                                        physical_factor=factor if feature.is_mass else None))
    return result


def dataset_truths(dataset) -> list[dict] | None:
    """The truth dict of every item of a simulated ``dataset`` (under any Subset wrappers), in item order;
    None when the data is not simulated (a DeepLense folder has no scene)."""
    from ..data.splits import base_dataset

    base, mapping = base_dataset(dataset)
    if not hasattr(base, "truths"):
        return None
    indices = mapping if mapping is not None else range(len(base))
    return base.truths(list(indices))
