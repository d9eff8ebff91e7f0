"""Promises of sky rotation: a turned scene is exactly the turned image at quarter turns, matches
the simulator's own quarter-turn rule, and at 0 deg is the simulator's image."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from eqlens.data.simulated import SimulatedLensDataset, split_seed
from eqlens.experiments.sky import render_rotated, rotate_scene
from eqlens.simulation import LensSimulator

from .conftest import TINY

# An even grid: on an odd one the central pixel sits on the vortex line, where its deflection jumps.
EVEN = dataclasses.replace(TINY, image_size=32, supersampling=2, lens_orientation_range=(0.0, 3.1),
                           shear_range=(0.0, 0.1))


@pytest.mark.parametrize("k", [1, 2, 3])
def test_a_scene_turned_by_quarter_turns_renders_the_exactly_turned_image(k):
    sim = LensSimulator(EVEN, dtype=torch.float64)
    params = sim.sample(5, range(6))  # two of each class
    turned = sim.render(rotate_scene(params, 90 * k))
    expected = torch.rot90(sim.render(params), k, dims=(-2, -1))
    assert (turned - expected).abs().max() < 1e-12 * expected.abs().max()
    reference = params.rotated90(k)
    for name in ("subhalo_x", "source_center_y", "lens_e2", "gamma1", "source_e1"):
        assert torch.allclose(getattr(rotate_scene(params, 90 * k), name), getattr(reference, name), atol=1e-14)


def test_at_zero_degrees_the_rendered_test_images_are_the_simulators():
    x, y = render_rotated(TINY, split_seed(0, "test"), range(6), 0.0)
    x0, y0 = SimulatedLensDataset(TINY, split="test", size=6).batch(range(6))
    assert torch.equal(x, x0) and torch.equal(y, y0)


def test_an_off_grid_angle_gives_new_finite_images_with_the_same_labels():
    x0, y0 = render_rotated(TINY, 0, range(3), 0.0)
    x, y = render_rotated(TINY, 0, range(3), 30.0, image_size=17)
    assert x.shape == (3, 1, 17, 17) and torch.isfinite(x).all() and torch.equal(y, y0)
    assert 0 <= float(x.min()) and float(x.max()) == 1.0
