"""Promises of turning the sky instead of the picture (`LensParameters.turned`, `simulate(turn_deg=...)`,
`SimulatedLensDataset.turned_batch`): a turned scene is exactly the turned image at quarter turns,
matches the simulator's own quarter-turn rule, is the simulator's image at 0 deg, and takes one
angle per scene."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from eqlens.data.regression import SimulatedRegressionDataset
from eqlens.data.simulated import SimulatedLensDataset, render_turned_lens
from eqlens.data.transforms import prepare_batch
from eqlens.simulation import LensSimulator, get_config

SIZE = 17
TINY = dataclasses.replace(get_config("model_i"), name="tiny_model_i", image_size=SIZE, pixel_scale=150 * 0.05 / SIZE)
# An even grid: on an odd one the central pixel sits on the vortex line, where its deflection jumps.
EVEN = dataclasses.replace(TINY, image_size=32, supersampling=2, lens_orientation_range=(0.0, 3.1),
                           shear_range=(0.0, 0.1))


@pytest.mark.parametrize("k", [1, 2, 3])
def test_a_scene_turned_by_quarter_turns_renders_the_exactly_turned_image(k):
    sim = LensSimulator(EVEN, dtype=torch.float64)
    params = sim.sample(5, range(6))  # two of each class
    turned = sim.render(params.turned(90 * k))
    expected = torch.rot90(sim.render(params), k, dims=(-2, -1))
    assert (turned - expected).abs().max() < 1e-12 * expected.abs().max()
    reference = params.rotated90(k)
    for name in ("subhalo_x", "source_center_y", "lens_e2", "gamma1", "source_e1", "vortex_center_x"):
        assert torch.allclose(getattr(params.turned(90 * k), name), getattr(reference, name), atol=1e-14)


def test_one_angle_per_scene_turns_each_scene_by_its_own_angle():
    params = LensSimulator(TINY, dtype=torch.float64).sample(2, range(3))
    angles = torch.tensor([0.0, 30.0, 250.0])
    together = params.turned(angles)
    for i, a in enumerate(angles.tolist()):
        alone = params.turned(a)
        for name in ("subhalo_x", "gamma2", "vortex_angle", "lens_e1"):
            assert torch.allclose(getattr(together, name)[i], getattr(alone, name)[i], atol=1e-14)
    with pytest.raises(ValueError, match="one per scene"):
        params.turned(torch.zeros(2))


def test_at_zero_degrees_the_turned_batch_is_the_simulators_image():
    data = SimulatedLensDataset(TINY, split="test", size=6)
    x, y = data.turned_batch(range(6), 0.0)
    x0, y0 = data.batch(range(6))
    assert torch.equal(x, x0) and torch.equal(y, y0)


def test_an_off_grid_angle_gives_new_finite_images_with_the_same_labels_and_noise_on_the_grid():
    data = SimulatedLensDataset(TINY, split="train", size=3, image_size=15)
    x0, y0 = data.batch(range(3))
    x, y = data.turned_batch(range(3), torch.tensor([30.0, 30.0, 75.0]))
    assert x.shape == (3, 1, 15, 15) and torch.isfinite(x).all() and torch.equal(y, y0)
    assert not torch.equal(x, x0) and float(x.amin()) >= 0 and torch.allclose(x.amax(dim=(1, 2, 3)), torch.ones(3))


def test_a_cached_dataset_still_renders_turned_scenes():
    cached = SimulatedLensDataset(TINY, split="val", size=3, cache=True)
    fresh = SimulatedLensDataset(TINY, split="val", size=3)
    assert torch.equal(cached.turned_batch(range(3), 40.0)[0], fresh.turned_batch(range(3), 40.0)[0])


def test_regression_items_turn_their_images_and_keep_their_masses():
    data = SimulatedRegressionDataset("axion_mass", TINY, split="test", size=3)
    x0, m0 = data.batch(range(3))
    x, m = data.turned_batch(range(3), 90.0)
    assert torch.equal(m, m0) and not torch.equal(x, x0)
    assert torch.equal(x, data.images.turned_batch(data.simulator_indices(range(3)), 90.0)[0])


def test_one_lens_rendered_at_many_angles_starts_with_the_simulators_image_and_turns_its_truth():
    sim = LensSimulator(TINY)
    x, truths = render_turned_lens(sim, 4, 0, 1, [0.0, 90.0, 33.0])
    upright = sim.simulate(4, [0], labels=[1])
    assert x.shape == (3, 1, SIZE, SIZE) and torch.equal(x[0], prepare_batch(upright.images, None)[0])
    assert truths[0]["class_name"] == "cdm"
    assert truths[0]["subhalo_pixels"] == upright.truth.for_image(0)["subhalo_pixels"]
    # A quarter turn moves a subhalo at (col, row) to (row, S - 1 - col), as rot90 moves pixels.
    col, row = truths[0]["subhalo_pixels"][0]
    assert truths[1]["subhalo_pixels"][0] == pytest.approx([row, SIZE - 1 - col], abs=1e-9)
