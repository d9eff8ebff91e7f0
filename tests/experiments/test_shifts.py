"""Promises of the named shifts: valid configs, finite images that differ from the unshifted ones,
paired scenes, and the physical size of each change."""

from __future__ import annotations

import pytest
import torch

from eqlens.data.simulated import SimulatedLensDataset
from eqlens.experiments.shifts import ORIENTATION, SHIFTS, get_shift, parse_shifts, shifted_config
from eqlens.simulation import SimulationConfig, get_config
from eqlens.simulation.instrument import noise_variance

from .conftest import SIZE, TINY

SIMULATION_SHIFTS = [name for name, s in SHIFTS.items() if not s.rotates_images]
CHANGING_TINY = [name for name in SIMULATION_SHIFTS if name != "model_i"]  # TINY has Model I's lens population


def render(config, n=3):
    return SimulatedLensDataset(config, split="test", size=n, image_size=SIZE).batch(range(n))


@pytest.mark.parametrize("name", CHANGING_TINY)
def test_every_simulation_shift_renders_finite_images_unlike_the_unshifted_ones(name):
    shifted = shifted_config(TINY, name)
    assert isinstance(shifted, SimulationConfig) and shifted.class_names == TINY.class_names
    assert shifted.name == f"{TINY.name}+{name}" and get_shift(name).changes(TINY)
    (x0, y0), (x1, y1) = render(TINY), render(shifted)
    assert x1.shape == x0.shape == (3, 1, SIZE, SIZE) and torch.isfinite(x1).all()
    assert torch.equal(y0, y1)
    assert (x1 - x0).abs().max() > 1e-3


def test_a_shifted_image_shows_the_same_scene_draws_as_its_unshifted_twin():
    base, shifted = (SimulatedLensDataset(c, split="test", size=3) for c in (TINY, shifted_config(TINY, "psf_wide")))
    for i in range(3):
        a, b = base.truth(i), shifted.truth(i)
        assert a["theta_E"] == b["theta_E"] and a["source_center"] == b["source_center"]


def test_psf_wide_doubles_the_seeing_disk():
    assert shifted_config("model_i", "psf_wide").psf_fwhm == pytest.approx(2 * get_config("model_i").psf_fwhm)


def relative_noise_variance(c, flux, end: int) -> torch.Tensor:
    """Noise variance over squared signal counts at one end of the exposure range."""
    t = torch.tensor([10.0 ** c.log10_exposure_range[end]], dtype=torch.float64)
    var = noise_variance(flux, t, torch.tensor([c.background_rms], dtype=torch.float64), c.noise_model)
    return var / (t * flux) ** 2


def test_noise_x3_makes_every_noise_term_three_times_larger_against_the_signal():
    base, noisy = get_config("model_i"), shifted_config("model_i", "noise_x3")
    flux = torch.tensor([[[0.5, 2.0, 10.0]]], dtype=torch.float64)
    for end in (0, 1):
        assert torch.allclose(relative_noise_variance(noisy, flux, end), 9 * relative_noise_variance(base, flux, end))


def test_model_ii_resized_takes_the_model_ii_instrument_and_keeps_the_lenses():
    shifted, model_ii = shifted_config("binary", "model_ii_resized"), get_config("model_ii")
    assert (shifted.image_size, shifted.pixel_scale, shifted.psf_fwhm) == \
        (model_ii.image_size, model_ii.pixel_scale, model_ii.psf_fwhm)
    assert shifted.class_names == ("no_sub", "sub") and shifted.n_subhalos == get_config("binary").n_subhalos


def test_a_shift_that_changes_nothing_says_so():
    assert get_shift("model_ii_resized").changes(get_config("model_ii")) == {}
    assert get_shift("psf_wide").changes(get_config("model_ii"))


def test_orientation_leaves_the_simulator_alone():
    assert get_shift(ORIENTATION).rotates_images and shifted_config(TINY, ORIENTATION) == TINY


def test_all_expands_to_every_shift_and_an_unknown_name_lists_the_known_ones():
    assert parse_shifts("all") == list(SHIFTS) and parse_shifts("shear, psf_wide") == ["shear", "psf_wide"]
    with pytest.raises(ValueError, match="psf_wide"):
        parse_shifts("psf_narrow")


def test_shifted_configs_survive_the_json_round_trip_of_a_model_card():
    import json

    for name in SIMULATION_SHIFTS:
        c = shifted_config("model_i", name)
        assert SimulationConfig.from_dict(json.loads(json.dumps(c.to_dict()))) == c
