"""Promises of the ideal observer: the free amplitude is solved exactly, D_sub is the whitened distance a
direct computation gives, the crop disk is the one the network sees, and the axion search finds a true
axion lens again (the positive control)."""

from __future__ import annotations

import dataclasses
import json
import math

import numpy as np
import pytest
import torch

from eqlens.analysis.detectability import (
    SearchBudget,
    ceiling_estimate,
    disk_mask,
    error_rate_by_distance,
    lens_detectability,
    whitened_distance,
)
from eqlens.data.transforms import center_crop
from eqlens.groups import circular_mask
from eqlens.simulation import LensSimulator, get_config

# Model I's pixels on a 64 px frame (3.2"): the Einstein ring (1.28") and the arcs fit, renders are cheap
SMALL = dataclasses.replace(get_config("model_i"), name="small_model_i", image_size=64)
AXION, CDM = 0, 1
FAST = SearchBudget(grid_angles=6, grid_log10_masses=4, nosub_evaluations=20, ax_evaluations=80, theta_evaluations=20)


@pytest.fixture(scope="module")
def sim():
    return LensSimulator(SMALL, dtype=torch.float64)


def test_the_disk_is_the_inscribed_disk_of_the_central_crop_the_network_sees():
    image = torch.arange(150 * 150, dtype=torch.float64).reshape(150, 150)
    seen = center_crop(image, 81)[circular_mask(81, 81) > 0]
    assert torch.equal(image[disk_mask(150, 81)], seen)
    assert int(disk_mask(33).sum()) == int(circular_mask(33, 33).sum())


def test_the_free_amplitude_makes_the_distance_blind_to_the_alternatives_brightness(sim):
    params = sim.sample(7, [1, 2], labels=[CDM, 2])
    flux = sim.render(params)
    mask = disk_mask(SMALL.image_size, 41)
    d1, a1 = whitened_distance(flux[0], flux[1:], params.exposure[0], params.background_rms[0], mask)
    d3, a3 = whitened_distance(flux[0], 3 * flux[1:], params.exposure[0], params.background_rms[0], mask)
    assert torch.allclose(d1, d3, rtol=1e-10) and torch.allclose(a1, 3 * a3, rtol=1e-10)
    same, amplitude = whitened_distance(flux[0], 0.5 * flux[:1], params.exposure[0], params.background_rms[0], mask)
    assert float(same) < 1e-6 and float(amplitude) == pytest.approx(2.0)


def test_d_sub_is_the_direct_whitened_distance_to_the_scene_without_its_subhalos(sim):
    params = sim.sample(7, [4], labels=[CDM])
    result = lens_detectability(params, SMALL, crop=41, alternatives=("sub",), simulator=sim)
    # by hand: the same scene with zero-mass subhalos, 2 t mu + (t sigma)^2, least-squares amplitude
    smooth = params.replace(subhalo_theta_E=torch.zeros_like(params.subhalo_theta_E))
    mu, alt = sim.render(params)[0].numpy(), sim.render(smooth)[0].numpy()
    t, sigma = float(params.exposure[0]), float(params.background_rms[0])
    inside = np.zeros((64, 64), dtype=bool)
    top = (64 - 41) // 2
    inside[top:top + 41, top:top + 41] = circular_mask(41, 41).numpy() > 0
    w = 1 / np.sqrt(2 * t * mu[inside] + (t * sigma) ** 2)
    a, b = t * mu[inside] * w, t * alt[inside] * w
    amplitude = float(np.dot(a, b) / np.dot(b, b))
    assert result.D_sub == pytest.approx(float(np.linalg.norm(a - amplitude * b)), rel=1e-9)
    assert result.D_sub > 1 and result.renders == 2


def test_the_axion_search_finds_a_true_axion_lens_again():
    """Positive control: the target is an axion scene the grid does not hold (angle and mass off-grid);
    the search returns D_ax near 0 while the smooth alternative stays far away."""
    sim = LensSimulator(SMALL, dtype=torch.float64)
    params = sim.sample(11, [0], labels=[AXION])
    result = lens_detectability(params, SMALL, crop=None, budget=FAST, alternatives=("nosub", "ax"), simulator=sim)
    assert result.D_ax < 0.3, result
    assert result.D_nosub > 3 * max(result.D_ax, 0.3)
    assert result.ax_fit["amplitude"] == pytest.approx(1.0, abs=0.02)
    assert result.renders <= FAST.renders(("nosub", "ax"))


def test_a_cdm_lens_lies_farther_from_every_axion_scene_than_the_axion_lens_does(sim):
    params = sim.sample(11, [1], labels=[CDM])
    budget = dataclasses.replace(FAST, ax_evaluations=20)
    result = lens_detectability(params, SMALL, crop=None, budget=budget, alternatives=("ax",), simulator=sim)
    assert result.D_ax > 1 and math.isnan(result.D_sub)


def test_error_rates_by_distance_and_the_ceiling_count_what_the_reference_counts():
    d = [5.0, 7.5, 9.0, 11.0, 16.0, 30.0, 40.0, 50.0]
    correct = [False, False, True, True, True, True, True, False]
    bins = error_rate_by_distance(d, correct)
    assert [b["n"] for b in bins] == [2, 1, 1, 0, 1, 3]  # < 8, 8-10, 10-12, 12-15, 15-20, > 20
    assert bins[0]["error_rate"] == 1.0 and bins[1]["error_rate"] == 0.0 and math.isnan(bins[3]["error_rate"])
    assert bins[5]["error_rate"] == pytest.approx(1 / 3) and bins[5]["se"] == pytest.approx(math.sqrt(2 / 27))
    c = ceiling_estimate(d, [0.99, 0.96])
    assert c["lost_share"] == 1 / 8 and c["half_lost_share"] == 2 / 8
    assert c["cdm_ceiling"] == pytest.approx(1 - 1 / 8 - 1 / 8)
    assert c["ceiling"] == pytest.approx((0.75 + 0.99 + 0.96) / 3)


def test_the_command_writes_one_row_per_cdm_lens_with_every_distance(tmp_path, capsys):
    from eqlens.cli import main

    out = tmp_path / "d.json"
    assert main(["detectability", "--config", "model_i", "--lenses", "1", "--grid-angles", "2", "--grid-masses",
                 "2", "--evaluations", "6", "--json", str(out)]) == 0
    report = json.loads(out.read_text())
    (row,) = report["lenses"]
    assert row["label"] == "cdm" and row["index"] % 3 == 1
    assert all(row[k] > 0 for k in ("D_sub", "D_nosub", "D_nosub_theta_E", "D_ax", "D_ax_theta_E"))
    assert row["D_nosub_theta_E"] <= row["D_nosub"] and row["renders"] <= report["settings"]["renders_per_lens_max"]
    assert "folder stream 23" in report["settings"]["stream"] and "| D_ax |" in capsys.readouterr().out
