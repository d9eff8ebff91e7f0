"""model_i_tnfw: Model I's scenes with its CDM subhalos as truncated NFWs of the same masses and places."""

import math

import pytest
import torch

from eqlens.simulation import LensSimulator, config_names, get_config
from eqlens.simulation.cosmology import nfw_scale_radius_arcsec
from eqlens.simulation.profiles import TNFW, PointMass
from eqlens.simulation.simulator import tnfw_subhalos

CDM = 1  # ("axion", "cdm", "no_sub")


@pytest.fixture(scope="module")
def tnfw_sim():
    return LensSimulator(get_config("model_i_tnfw"), dtype=torch.float64)


def test_model_i_tnfw_is_listed_and_draws_model_is_scenes():
    tnfw, model_i = get_config("model_i_tnfw"), get_config("model_i")
    assert "model_i_tnfw" in config_names() and tnfw.subhalo_profile == "tnfw"
    assert tnfw.same_scenes(model_i) and model_i.subhalo_profile == "point_mass"
    assert tnfw.subhalo_form == "subhalos: truncated NFW" and model_i.subhalo_form == "subhalos: point masses"


def test_the_cdm_deflection_is_the_sum_of_golden_tested_tnfw_profiles_of_the_drawn_subhalos(tnfw_sim):
    p = tnfw_sim.sample(0, [1, 4], labels=[CDM, CDM])
    ax, ay = tnfw_sim.deflection(p)
    bare = p.replace(subhalo_mass=p.subhalo_mass * 0, subhalo_theta_E=p.subhalo_theta_E * 0)
    bx, by = tnfw_sim.deflection(bare)
    Rs, alpha_Rs, r_trunc = tnfw_subhalos(p, tnfw_sim.config)
    x, y = tnfw_sim.grid
    want_x, want_y = torch.zeros_like(ax), torch.zeros_like(ay)
    for b in range(2):
        assert int(p.n_subhalos[b]) == 25
        for j in range(25):
            dx, dy = TNFW.deflection(x[0], y[0], Rs[b, j], alpha_Rs[b, j], r_trunc[b, j], p.subhalo_x[b, j],
                                     p.subhalo_y[b, j])  # fmt: skip
            want_x[b] += dx
            want_y[b] += dy
    assert torch.allclose(ax - bx, want_x, rtol=0, atol=1e-12) and torch.allclose(ay - by, want_y, rtol=0, atol=1e-12)
    assert (want_x.abs() + want_y.abs()).max() > 1e-3  # the subhalos do deflect


def test_a_mixed_batch_renders_each_lens_as_alone_with_tnfws_computed_for_the_cdm_lenses_only(tnfw_sim, monkeypatch):
    """A batch holding cdm and other lenses: the TNFWs are computed for the cdm rows alone, and each image's
    deflection is bit for bit the one with every row computed (skip_absent off), and what it is rendered
    alone (to rounding: vectorised transcendental functions may round differently at another batch size)."""
    from eqlens.simulation import simulator

    p = tnfw_sim.sample(0, [0, 1, 2, 3], labels=[0, CDM, 2, CDM])
    seen = []
    real = simulator.tnfw_sum
    monkeypatch.setattr(simulator, "tnfw_sum",
                        lambda x, y, Rs, *rest: seen.append(Rs.shape[0]) or real(x, y, Rs, *rest))
    ax, ay = tnfw_sim.deflection(p)
    assert seen == [2]
    fx, fy = tnfw_sim.deflection(p, skip_absent=False)
    assert torch.equal(ax, fx) and torch.equal(ay, fy)
    for b in (1, 2):  # a cdm lens and a no_sub one
        one = tnfw_sim.sample(0, [b], labels=[[0, CDM, 2, CDM][b]])
        bx, by = tnfw_sim.deflection(one)
        assert torch.allclose(ax[b], bx[0], rtol=0, atol=1e-12) and torch.allclose(ay[b], by[0], rtol=0, atol=1e-12)


def test_each_tnfw_subhalo_has_its_point_masss_total_mass_and_is_finite_when_absent(tnfw_sim):
    p = tnfw_sim.sample(0, [1, 2], labels=[CDM, 2])  # a cdm lens and a no_sub one (no subhalos)
    Rs, alpha_Rs, r_trunc = tnfw_subhalos(p, tnfw_sim.config)
    assert torch.isfinite(Rs).all() and torch.isfinite(alpha_Rs).all() and torch.isfinite(r_trunc).all()
    assert (alpha_Rs[1] == 0).all()
    far_x = torch.tensor([300.0], dtype=torch.float64)
    far_y = torch.tensor([-200.0], dtype=torch.float64)
    for j in range(25):  # far away every subhalo deflects as its point mass: the same total mass
        tx, ty = TNFW.deflection(far_x, far_y, Rs[0, j], alpha_Rs[0, j], r_trunc[0, j], p.subhalo_x[0, j],
                                 p.subhalo_y[0, j])  # fmt: skip
        px, py = PointMass.deflection(far_x, far_y, p.subhalo_theta_E[0, j], p.subhalo_x[0, j], p.subhalo_y[0, j])
        assert torch.allclose(tx, px, rtol=2e-5) and torch.allclose(ty, py, rtol=2e-5)
    # truncated at the tidal radius in the isothermal host: r_t = (pi theta_m^2 r^2 / (2 theta_E))^(1/3)
    r = torch.hypot(p.subhalo_x[0], p.subhalo_y[0])
    tidal = (math.pi * p.subhalo_theta_E[0] ** 2 * r**2 / (2 * p.theta_E[0])) ** (1 / 3)
    assert torch.allclose(r_trunc[0], tidal, rtol=1e-12)


def test_the_scale_radius_follows_duffy_2008_with_astropys_distances():
    from astropy import units as u
    from astropy.cosmology import FlatLambdaCDM

    cosmo = FlatLambdaCDM(H0=70, Om0=0.3)
    z, mass = 0.5, 1e8
    rho_crit = cosmo.critical_density(z).to(u.Msun / u.Mpc**3).value
    r200 = (3 * mass / (4 * math.pi * 200 * rho_crit)) ** (1 / 3)
    concentration = 5.71 * (mass / (2e12 / 0.7)) ** -0.084 * (1 + z) ** -0.47
    want = (r200 / concentration / cosmo.angular_diameter_distance(z).value * u.rad).to(u.arcsec).value
    assert nfw_scale_radius_arcsec(mass, z) == pytest.approx(want, rel=1e-6)
    assert 10 < concentration < 12 and 0.1 < want < 0.15


def test_model_i_tnfw_renders_finite_images_that_differ_from_model_i_only_where_subhalos_are(tnfw_sim):
    indices = list(range(6))  # labels index % 3: two of each class
    images = LensSimulator(get_config("model_i_tnfw")).simulate(0, indices).images
    assert images.shape == (6, 150, 150) and torch.isfinite(images).all()
    points = LensSimulator(get_config("model_i"), dtype=torch.float64)
    p = tnfw_sim.sample(0, indices)
    tnfw_flux, point_flux = tnfw_sim.render(p), points.render(p)
    same = p.labels != CDM
    assert torch.equal(tnfw_flux[same], point_flux[same])
    assert not torch.allclose(tnfw_flux[~same], point_flux[~same])


def test_simulate_help_lists_model_i_tnfw(capsys):
    from eqlens.cli import main

    with pytest.raises(SystemExit):
        main(["simulate", "--help"])
    assert "model_i_tnfw" in capsys.readouterr().out
