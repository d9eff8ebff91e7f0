"""What-if scenes: an edit changes only its own fields, keeps the lens's noise, and moves the physics it names."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import torch

from eqlens.simulation import LensSimulator, get_config, sample_parameters
from eqlens.simulation.sampling import unit_einstein_radius, vortex_half_length
from eqlens.simulation.whatif import EDITS, SceneEditError, applicable_edits, edit_scene, render_scene, scene_values

AXION, CDM, NO_SUB = 0, 1, 2
# the LensParameters fields each edit may change, and nothing else
FIELDS = {"theta_E": {"theta_E"}, "source_R_sersic": {"source_R_sersic"}, "source_x": {"source_center_x"},
          "source_y": {"source_center_y"}, "shear_modulus": {"gamma1", "gamma2"},
          "shear_angle_deg": {"gamma1", "gamma2"}, "exposure": {"exposure"},
          "subhalo_mass_scale": {"subhalo_mass", "subhalo_theta_E"},
          "log10_axion_mass": {"log10_axion_mass", "vortex_half_length"}}
VALUES = {"theta_E": 1.5, "source_R_sersic": 0.4, "source_x": 0.2, "source_y": -0.1, "shear_modulus": 0.12,
          "shear_angle_deg": 30.0, "exposure": 5000.0, "subhalo_mass_scale": 4.0, "log10_axion_mass": -22.5}


@pytest.fixture(scope="module")
def simulator():
    return LensSimulator("model_i", dtype=torch.float64)


def changed_fields(a, b) -> set[str]:
    return {f.name for f in dataclasses.fields(a)
            if not torch.equal(torch.nan_to_num(getattr(a, f.name)), torch.nan_to_num(getattr(b, f.name)))}


def test_every_edit_is_listed_with_its_fields():
    assert set(FIELDS) == set(EDITS) == set(VALUES)


@pytest.mark.parametrize("name", list(EDITS))
def test_an_edited_scene_differs_from_the_drawn_one_only_in_the_edited_fields(name):
    label = {"subhalos": CDM, "vortex": AXION}.get(EDITS[name].needs, NO_SUB)
    drawn = sample_parameters(get_config("model_i"), 1004, [0], [label])
    edited = edit_scene(drawn, **{name: VALUES[name]})
    changed = changed_fields(drawn, edited)
    assert changed and changed <= FIELDS[name]  # e.g. a modulus along gamma1 leaves gamma2 at 0
    values = scene_values(edited)
    expected = 1.0 if name == "subhalo_mass_scale" else VALUES[name]  # the scale is relative to the scene
    assert values[name] == pytest.approx(expected, rel=1e-9, abs=1e-12)


@pytest.mark.parametrize("label", [AXION, CDM, NO_SUB])
def test_an_unedited_scene_renders_bit_for_bit_as_the_simulator_draws_it(simulator, label):
    params = simulator.sample(1093, [0], [label])
    assert torch.equal(render_scene(simulator, params, 1093, [0]).images,
                       simulator.simulate(1093, [0], labels=[label]).images)


def ring_radius(image: torch.Tensor, pixel_scale: float) -> float:
    """Radius (arcsec) of the brightest annulus of a centred image ``[H, W]``: its azimuthal mean's peak."""
    n = image.shape[-1]
    yy, xx = np.mgrid[:n, :n] - (n - 1) / 2
    r = np.hypot(xx, yy)
    bins = np.round(r).astype(int)
    profile = np.bincount(bins.ravel(), weights=image.numpy().ravel()) / np.maximum(np.bincount(bins.ravel()), 1)
    return float(np.argmax(profile[5:]) + 5) * pixel_scale


def test_editing_theta_e_moves_the_einstein_ring_to_it(simulator):
    drawn = simulator.sample(1004, [0], [NO_SUB])
    centred = edit_scene(drawn, source_x=0.0, source_y=0.0, shear_modulus=0.0)  # a source behind an SIE: a ring
    scale = simulator.config.pixel_scale
    for theta_E in (1.0, 1.3, 1.6):
        flux = simulator.render(edit_scene(centred, theta_E=theta_E))[0]
        assert ring_radius(flux, scale) == pytest.approx(theta_E, abs=1.5 * scale)


def test_the_noise_realisation_stays_the_lens_own_as_the_physics_moves(simulator):
    """Same seed and index, the same noise draws: with the source off the field (the sky all background) a
    change of theta_E leaves almost every pixel's count as it was; another seed's noise shares few."""
    drawn = simulator.sample(1004, [0], [NO_SUB])
    far = edit_scene(drawn, source_x=2.0, source_y=2.0, source_R_sersic=0.02)
    a = render_scene(simulator, far, 1004, [0]).images
    b = render_scene(simulator, edit_scene(far, theta_E=1.5), 1004, [0]).images
    other = render_scene(simulator, far, 1005, [0]).images
    assert float((a == b).double().mean()) > 0.99
    assert float((a == other).double().mean()) < 0.5


def test_scaling_the_subhalo_masses_keeps_their_einstein_radii_consistent():
    config = get_config("model_i")
    drawn = sample_parameters(config, 1025, [0], [CDM])
    edited = edit_scene(drawn, subhalo_mass_scale=9.0)
    assert torch.allclose(edited.subhalo_mass, 9.0 * drawn.subhalo_mass)
    assert torch.allclose(edited.subhalo_theta_E, unit_einstein_radius(config) * edited.subhalo_mass.sqrt())


def test_the_axion_mass_sets_the_vortex_length_as_the_sampler_does():
    config = get_config("model_i")
    drawn = sample_parameters(config, 1123, [0], [AXION])
    edited = edit_scene(drawn, log10_axion_mass=-22.5)
    assert torch.allclose(edited.vortex_half_length, vortex_half_length(config, edited.log10_axion_mass))
    assert float(edited.vortex_half_length[0]) < float(drawn.vortex_half_length[0])  # heavier: shorter


def test_shear_angle_alone_keeps_the_modulus():
    drawn = sample_parameters(get_config("model_i_varied"), 1256, [0], [NO_SUB])
    before = scene_values(drawn)
    after = scene_values(edit_scene(drawn, shear_angle_deg=100.0))
    assert after["shear_modulus"] == pytest.approx(before["shear_modulus"], rel=1e-12)
    assert after["shear_angle_deg"] == pytest.approx(100.0)


@pytest.mark.parametrize(("label", "changes", "words"), [
    (NO_SUB, {"theta_E": 9.0}, "outside"),
    (NO_SUB, {"exposure": math.nan}, "outside"),
    (NO_SUB, {"redshift": 1.0}, "unknown scene edit"),
    (NO_SUB, {"subhalo_mass_scale": 2.0}, "needs subhalos"),
    (CDM, {"log10_axion_mass": -23.0}, "needs vortex"),
])
def test_an_edit_the_scene_cannot_take_is_refused_in_words(label, changes, words):
    drawn = sample_parameters(get_config("model_i"), 7, [0], [label])
    with pytest.raises(SceneEditError, match=words):
        edit_scene(drawn, **changes)


def test_only_the_edits_a_scene_carries_are_offered():
    config = get_config("model_i")
    offered = {k: set(applicable_edits(sample_parameters(config, 3, [0], [k]))) for k in (AXION, CDM, NO_SUB)}
    assert "log10_axion_mass" in offered[AXION] and "subhalo_mass_scale" not in offered[AXION]
    assert "subhalo_mass_scale" in offered[CDM] and "log10_axion_mass" not in offered[CDM]
    assert offered[NO_SUB] == offered[AXION] - {"log10_axion_mass"}
