"""Configs: names, fixed class order, validation, and the Model I recipe's derived numbers."""

import dataclasses

import pytest
import torch

from eqlens.errors import EqlensError
from eqlens.simulation import LensSimulator, SimulationConfig, config_names, get_config
from eqlens.simulation.cosmology import einstein_radius_arcsec


def test_configs_list_their_classes_in_the_fixed_alphabetical_order():
    assert set(config_names()) == {"model_i", "model_i_line", "model_i_tnfw", "model_i_varied", "model_i_varied_tnfw",
                                  "model_ii", "binary"}
    assert get_config("model_i").class_names == get_config("model_i_line").class_names == ("axion", "cdm", "no_sub")
    assert get_config("model_ii").class_names == ("axion", "cdm", "no_sub")
    assert get_config("binary").class_names == ("no_sub", "sub")
    assert get_config("model_ii").image_size == 64 and get_config("model_i").image_size == 150


def test_an_unknown_config_or_class_raises_an_eqlens_error():
    with pytest.raises(EqlensError, match="model_i"):
        get_config("model_iv")
    with pytest.raises(EqlensError):
        SimulationConfig(class_names=("cdm", "axion"))
    with pytest.raises(EqlensError):
        SimulationConfig(theta_E_range=(2.0, 1.0))


def test_configs_are_frozen_and_edited_with_replace_and_round_trip_through_dicts():
    cfg = dataclasses.replace(get_config("model_i"), image_size=64, psf_fwhm_range=(0.05, 0.1))
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.image_size = 3
    assert SimulationConfig.from_dict(cfg.to_dict()) == cfg


def test_the_model_i_einstein_radius_follows_the_deeplense_recipe():
    from astropy import units as u
    from astropy.constants import G, M_sun, c
    from astropy.cosmology import FlatLambdaCDM

    cosmo = FlatLambdaCDM(H0=70, Om0=0.3)
    d_l, d_s = cosmo.luminosity_distance(0.5).to(u.m), cosmo.luminosity_distance(1.0).to(u.m)
    expected = ((4 * G * 1e12 * M_sun / c**2 * (d_s - d_l) / (d_l * d_s)) ** 0.5 * u.rad).to(u.arcsec).value
    assert abs(einstein_radius_arcsec(1e12, 0.5, 1.0) - expected) < 1e-7 * expected
    assert 1.2 < expected < 1.3
    d_l, d_s, d_ls = (cosmo.angular_diameter_distance(0.5), cosmo.angular_diameter_distance(1.0),
                      cosmo.angular_diameter_distance_z1z2(0.5, 1.0))  # fmt: skip
    angular = ((4 * G * 1e12 * M_sun / c**2 * d_ls / (d_l * d_s)) ** 0.5 * u.rad).to(u.arcsec).value
    assert abs(einstein_radius_arcsec(1e12, 0.5, 1.0, convention="angular") - angular) < 1e-7 * angular


def test_randomisation_ranges_vary_the_scene_within_their_bounds():
    ranges = dict(theta_E_range=(0.8, 1.6), psf_fwhm_range=(0.05, 0.2), background_rms_range=(0.005, 0.02),
                  source_n_sersic_range=(0.5, 4.0))  # fmt: skip
    cfg = dataclasses.replace(get_config("model_i"), image_size=17, **ranges)
    p = LensSimulator(cfg).sample(0, range(40))
    drawn = [p.theta_E, p.psf_fwhm, p.background_rms, p.source_n_sersic]
    for value, (lo, hi) in zip(drawn, ranges.values(), strict=True):
        assert float(value.min()) >= lo - 1e-6 and float(value.max()) <= hi + 1e-6 and float(value.std()) > 0
    fixed = LensSimulator(dataclasses.replace(cfg, theta_E_range=None)).sample(0, range(5)).theta_E
    assert torch.allclose(fixed, fixed[:1].expand(5))


def test_binary_sub_images_carry_cdm_subhalos():
    p = LensSimulator(dataclasses.replace(get_config("binary"), image_size=17)).sample(0, [0, 1])
    assert p.n_subhalos.tolist() == [0, 25]
