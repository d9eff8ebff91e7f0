"""error_anatomy: scene features from truths, quantile bins, error rate per (class, feature)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from eqlens.analysis.error_anatomy import (
    RING_HALF_WIDTH_ARCSEC,
    dataset_truths,
    error_anatomy,
    error_rate_bins,
    feature_table,
    mass_inside_ring,
    mass_near_ring,
    vortex_length,
)


def _truth(label, masses=(), positions=(), ends=None, log10_ma=None, exposure=1000.0, theta_e=1.2):
    return {"label": label, "theta_E": theta_e, "source_center": [0.3, 0.4], "subhalo_masses": list(masses),
            "subhalo_positions": [list(p) for p in positions], "vortex_endpoints": ends,
            "log10_axion_mass": log10_ma, "exposure": exposure}


def test_mass_near_ring_counts_only_subhalos_on_the_ring():
    t = _truth(1, masses=[1e9, 2e9, 4e9], positions=[(1.2, 0.0), (0.0, -1.2 - RING_HALF_WIDTH_ARCSEC / 2), (0.1, 0.0)])
    assert mass_near_ring(t) == pytest.approx(3e9)
    assert mass_near_ring(t, half_width=2.0) == pytest.approx(7e9)
    assert mass_inside_ring(t) == pytest.approx(4e9)  # only the one well inside theta_E - half width
    assert math.isnan(mass_near_ring(_truth(2)))


def test_vortex_length_and_features_absent_where_the_lens_has_no_such_thing():
    t = _truth(0, ends=[[-1.0, 0.0], [2.0, 4.0]], log10_ma=-23.0)
    assert vortex_length(t) == pytest.approx(5.0)
    table = feature_table([t, _truth(2)])
    assert table["vortex_length"][0] == pytest.approx(5.0) and math.isnan(table["vortex_length"][1])
    assert math.isnan(table["subhalo_mass_total"][0])
    assert table["source_offset"] == pytest.approx([0.5, 0.5])


def test_quantile_bins_hold_every_finite_lens_once_and_count_its_errors():
    values = np.array([1, 2, 3, 4, 5, 6, 7, 8, np.nan], dtype=float)
    wrong = np.array([1, 1, 0, 0, 0, 0, 0, 1, 1], dtype=bool)
    edges, counts, errors = error_rate_bins(values, wrong, bins=4)
    assert counts.tolist() == [2, 2, 2, 2] and errors.tolist() == [2, 0, 0, 1]
    assert edges[0] == 1 and edges[-1] == 8
    # Tied quantiles merge: two distinct values give at most two bins.
    edges, counts, errors = error_rate_bins(np.array([1.0, 1, 1, 5, 5]), np.array([0, 0, 1, 1, 1], bool), bins=4)
    assert counts.sum() == 5 and errors.sum() == 3 and len(counts) == len(edges) - 1 <= 2
    with pytest.raises(ValueError):
        error_rate_bins(values, wrong[:3])


def test_anatomy_finds_the_feature_the_errors_depend_on():
    rng = np.random.default_rng(0)
    n = 2000
    near = 10 ** rng.uniform(8, 10.5, n)  # one subhalo each, on the ring, of this mass
    truths = [_truth(1, masses=[m], positions=[(1.2, 0.0)], exposure=float(e))
              for m, e in zip(near, rng.uniform(1e3, 3e3, n), strict=True)]
    p_wrong = np.where(near < 1e9, 0.4, 0.02)  # light substructure on the arcs: often missed
    wrong = rng.random(n) < p_wrong
    labels = np.ones(n, dtype=int)
    predicted = np.where(wrong, 0, 1)
    bins = {b.feature.name: b for b in error_anatomy(truths, labels, predicted, ["axion", "cdm", "no_sub"])}
    assert "vortex_length" not in bins and "theta_E" not in bins  # undefined / constant for these lenses
    ring = bins["mass_near_ring"]
    assert ring.class_name == "cdm" and ring.counts.sum() == n
    assert ring.rate[0] > 0.3 and ring.rate[-1] < 0.05
    assert ring.total_rate == pytest.approx(wrong.mean())
    exposure = bins["exposure"].rate
    assert exposure.max() - exposure.min() < 0.1  # errors do not depend on it
    rows = ring.rows()
    assert len(rows) == 4 and rows[0]["errors"] == int(ring.errors[0])
    assert all(r["stderr"] > 0 for r in rows)


def test_dataset_truths_match_the_rendered_items_labels():
    from eqlens.data.simulated import SimulatedLensDataset
    ds = SimulatedLensDataset("model_i", size=6, seed=0, split="test", image_size=16)
    truths = dataset_truths(ds)
    assert [t["label"] for t in truths] == [ds[i][1] for i in range(6)]
    assert truths[4] == ds.truth(4)
    assert dataset_truths([(np.zeros((1, 4, 4)), 0)]) is None
