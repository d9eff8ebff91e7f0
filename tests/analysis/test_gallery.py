"""The gallery's choices: each section's truth criterion holds on the lenses it picks, deterministically."""

from __future__ import annotations

import math

import numpy as np
import pytest

from eqlens.analysis import gallery
from eqlens.analysis.error_anatomy import feature_table

SEEDS = range(1000, 1040)  # a small candidate range: sampling only, about 1 ms a lens


def values_of(name: str, class_name: str, config: str = "model_i") -> dict[int, float]:
    truths = gallery.candidate_truths(config, class_name, SEEDS)
    return dict(zip(SEEDS, feature_table(truths)[name].tolist(), strict=True))


def test_the_class_section_shows_the_most_central_sources_in_every_class():
    section = gallery.class_section(seeds=SEEDS, n=3)
    offsets = values_of("source_offset", "no_sub")
    seeds = list(dict.fromkeys(p.seed for p in section.picks))
    assert len(seeds) == 3 and [p.class_name for p in section.picks] == ["axion", "cdm", "no_sub"] * 3
    assert max(offsets[s] for s in seeds) <= min(v for s, v in offsets.items() if s not in seeds)


def test_the_vortex_section_picks_the_longest_then_the_shortest_lines():
    section = gallery.vortex_section(seeds=SEEDS, n=3)
    length = values_of("vortex_length", "axion")
    long, short = [p.seed for p in section.picks[:3]], [p.seed for p in section.picks[3:]]
    rest = [v for s, v in length.items() if s not in long + short]
    assert min(length[s] for s in long) >= max(rest) >= min(rest) >= max(length[s] for s in short)
    assert all(p.class_name == "axion" and p.values["vortex_length"] == pytest.approx(length[p.seed], rel=1e-5)
               for p in section.picks)


def test_the_subhalo_section_picks_the_most_mass_near_the_ring_with_physical_masses():
    section = gallery.subhalo_section(seeds=SEEDS, n=4)
    near = values_of("mass_near_ring", "cdm")
    chosen = [p.seed for p in section.picks]
    assert min(near[s] for s in chosen) >= max(v for s, v in near.items() if s not in chosen)
    for p in section.picks:
        assert p.values["mass_near_ring_physical"] == pytest.approx(0.593 * p.values["mass_near_ring"], rel=2e-3)


def test_the_population_section_reaches_the_varied_extremes_in_every_class():
    section = gallery.population_section(seeds=SEEDS)
    truths = gallery.candidate_truths("model_i_varied", "no_sub", SEEDS)
    theta = [t["theta_E"] for t in truths]
    assert len(section.picks) == 3 * len(gallery.VARIED_EXTREMES)
    smallest = next(p for p in section.picks if "smallest Einstein" in p.reason)
    largest = next(p for p in section.picks if "largest Einstein" in p.reason)
    assert smallest.values["theta_E"] == pytest.approx(min(theta), rel=1e-6)
    assert largest.values["theta_E"] == pytest.approx(max(theta), rel=1e-6)
    assert 1.0 <= min(theta) <= max(theta) <= 1.6
    assert all(p.config == "model_i_varied" and p.probabilities is None for p in section.picks)


def test_the_sections_are_deterministic_and_round_trip_through_json():
    a, b = gallery.vortex_section(seeds=SEEDS, n=2), gallery.vortex_section(seeds=SEEDS, n=2)
    assert a == b
    assert gallery.Section.from_dict(a.to_dict()).to_dict() == a.to_dict()


def always_no_sub(images) -> np.ndarray:
    """A model that calls every lens no_sub, whatever it sees."""
    return np.tile([0.05, 0.05, 0.9], (len(images), 1))


def test_the_error_section_shows_only_mistakes_a_few_per_class_with_a_reason():
    seeds = range(1000, 1008)
    section = gallery.error_section(always_no_sub, "always-no_sub", seeds=seeds, n=6)
    assert len(section.picks) == 6
    assert all(p.class_name != "no_sub" and p.predicted(("axion", "cdm", "no_sub")) == "no_sub"
               for p in section.picks)
    assert max(sum(p.class_name == c for p in section.picks) for c in ("axion", "cdm")) <= math.ceil(6 / 2)
    assert "accuracy 0.333" in section.text
    for p in section.picks:
        assert "lower than" in p.reason or "higher than" in p.reason
        assert 0.0 <= p.values[next(k for k in p.values if k.endswith("_percentile"))] <= 1.0


def test_a_cdm_lens_with_the_least_mass_near_the_ring_is_explained_by_it():
    truths = gallery.candidate_truths("model_i", "cdm", SEEDS)
    table = feature_table(truths)
    poorest = int(np.nanargmin(table["mass_near_ring"]))
    why, values = gallery.explain_miss(truths[poorest], table)
    assert why.startswith("subhalo mass within 0.3\"") and "lower than" in why
    assert values["mass_near_ring_percentile"] < 0.05
