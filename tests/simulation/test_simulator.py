"""The simulator: lensing physics on rendered images, exact rotations, determinism, noise statistics."""

import dataclasses
import json
import math

import pytest
import torch

from eqlens.simulation import LensSimulator, get_config
from eqlens.simulation.instrument import noise_variance
from eqlens.simulation.light import SersicEllipse


def _config(**changes):
    base = dict(image_size=33, pixel_scale=0.15)  # a small 4.95" field keeps tests fast
    return dataclasses.replace(get_config("model_i"), **{**base, **changes})


def _sis_scene(sim, beta=(0.0, 0.0), R=0.02):
    p = sim.sample(0, [0], labels=[2])  # no_sub
    return p.replace(
        theta_E=p.theta_E * 0 + 1.0, lens_e1=p.lens_e1 * 0, lens_e2=p.lens_e2 * 0, gamma1=p.gamma1 * 0,
        gamma2=p.gamma2 * 0, source_e1=p.source_e1 * 0, source_e2=p.source_e2 * 0,
        source_center_x=p.source_center_x * 0 + beta[0], source_center_y=p.source_center_y * 0 + beta[1],
        source_R_sersic=p.source_R_sersic * 0 + R,
    )  # fmt: skip


@pytest.fixture(scope="module")
def fine_sim():
    return LensSimulator(_config(image_size=151, pixel_scale=0.02, supersampling=3), dtype=torch.float64)


def test_a_centred_source_behind_an_sis_makes_a_ring_at_theta_E(fine_sim):
    image = fine_sim.render(_sis_scene(fine_sim), psf=False)[0]
    x = fine_sim.config.pixel_scale * (torch.arange(151, dtype=torch.float64) - 75)
    r = torch.hypot(x[None, :], x[:, None])
    radius = float((image * r).sum() / image.sum())
    assert abs(radius - 1.0) < 1e-3


def test_sis_magnification_of_a_small_offset_source_is_2_theta_E_over_beta(fine_sim):
    lensed = fine_sim.render(_sis_scene(fine_sim, beta=(0.3, 0.0)), psf=False).sum()
    scene = _sis_scene(fine_sim, beta=(0.3, 0.0))
    unlensed = fine_sim.render(scene.replace(theta_E=scene.theta_E * 0), psf=False).sum()
    assert abs(float(lensed / unlensed) / (2 * 1.0 / 0.3) - 1) < 0.015


def test_without_a_lens_the_image_is_the_source():
    sim = LensSimulator(_config(), dtype=torch.float64)
    p = sim.sample(0, [0, 1], labels=[2, 2])
    p = p.replace(theta_E=p.theta_E * 0, gamma1=p.gamma1 * 0, gamma2=p.gamma2 * 0)
    x, y = sim.grid
    source = sim.source_brightness(p, x, y) * sim.config.pixel_scale**2
    assert torch.equal(sim.render(p, psf=False), source)


def test_the_lensed_peak_never_exceeds_the_source_central_brightness():
    sim = LensSimulator(_config(), dtype=torch.float64)
    p = sim.sample(3, range(6))
    peak = p.source_amp * torch.exp(SersicEllipse.b_n(p.source_n_sersic)) * sim.config.pixel_scale**2
    assert bool((sim.render(p, psf=False).amax(dim=(1, 2)) <= peak * (1 + 1e-12)).all())


@pytest.mark.parametrize("vortex_model", ["line", "points"])
def test_turning_every_angle_and_centre_turns_the_image_exactly(vortex_model):
    cfg = _config(image_size=32, supersampling=2, vortex_model=vortex_model, vortex_points=20,
                  lens_orientation_range=(0, 3.1), shear_range=(0, 0.1))  # fmt: skip
    sim = LensSimulator(cfg, dtype=torch.float64)
    p = sim.sample(5, range(3))  # one axion, one cdm, one no_sub
    image = sim.render(p)
    for k in (1, 2, 3):
        turned = sim.render(p.rotated90(k))
        assert (turned - torch.rot90(image, k, dims=(-2, -1))).abs().max() < 1e-13 * image.abs().max()


def test_a_batch_equals_its_images_simulated_one_by_one_and_batch_size_does_not_matter():
    sim = LensSimulator(_config(), dtype=torch.float32)
    together = sim.simulate(11, [4, 5, 6, 7, 8])
    for row, index in enumerate([4, 5, 6, 7, 8]):
        alone = sim.simulate(11, [index])
        assert torch.equal(alone.images[0], together.images[row])
    pair = sim.simulate(11, [8, 5])
    assert torch.equal(pair.images[0], together.images[4]) and torch.equal(pair.images[1], together.images[1])


def test_the_same_seed_and_index_give_the_same_image_and_another_seed_another():
    sim = LensSimulator(_config(), dtype=torch.float32)
    a, b, c = sim.simulate(1, [0, 1]), sim.simulate(1, [0, 1]), sim.simulate(2, [0, 1])
    assert torch.equal(a.images, b.images) and not torch.equal(a.images, c.images)


def test_zero_mass_subhalos_give_exactly_the_no_substructure_image():
    sim = LensSimulator(_config(), dtype=torch.float64)
    cdm = sim.sample(0, [9], labels=[1])
    no_sub = sim.sample(0, [9], labels=[2])
    assert int(cdm.n_subhalos[0]) == 25
    massless = cdm.replace(subhalo_theta_E=cdm.subhalo_theta_E * 0)
    assert torch.equal(sim.render(massless), sim.render(no_sub))


def test_the_psf_conserves_flux():
    sim = LensSimulator(_config(image_size=48, pixel_scale=0.05, psf_fwhm_range=(0.1, 0.3)), dtype=torch.float64)
    p = sim.sample(0, range(3))  # an unlensed compact source in the middle: no flux near the borders
    zero = p.theta_E * 0
    p = p.replace(theta_E=zero, source_R_sersic=zero + 0.1, source_center_x=zero, source_center_y=zero)
    assert torch.allclose(sim.render(p).sum(dim=(1, 2)), sim.render(p, psf=False).sum(dim=(1, 2)), rtol=1e-6)


@pytest.mark.parametrize("noise_model", ["deeplense", "poisson"])
def test_noise_z_scores_have_mean_0_and_variance_1(noise_model):
    sim = LensSimulator(_config(image_size=40, noise_model=noise_model), dtype=torch.float64)
    p = sim.sample(0, range(6))
    flux = sim.render(p)
    counts = sim.add_noise(flux, p, 0, range(6))
    t = p.exposure[:, None, None]
    var = noise_variance(flux, p.exposure, p.background_rms, noise_model)
    unclipped = t * flux > 6 * t * p.background_rms[:, None, None] if noise_model == "deeplense" else flux >= 0
    z = ((counts - t * flux) / var.sqrt())[unclipped]
    assert z.numel() > 500
    tol = 5 / math.sqrt(z.numel())
    assert abs(float(z.mean())) < tol and abs(float(z.var()) - 1) < 5 * math.sqrt(2 / z.numel())


def test_no_nan_when_pixel_centres_sit_exactly_on_the_lens_and_on_a_subhalo():
    sim = LensSimulator(_config(), dtype=torch.float32)  # odd size: a pixel centre at the origin
    p = sim.sample(0, [1, 0])  # cdm, axion (vortex through the centre)
    x, _ = sim.grid
    p.subhalo_x[0, 0], p.subhalo_y[0, 0] = x[0, 0, 20], x[0, 0, 10]
    assert torch.isfinite(sim.render(p)).all()
    assert torch.isfinite(sim.add_noise(sim.render(p), p, 0, [1, 0])).all()


def test_float32_and_float64_render_the_same_scene():
    single = LensSimulator(_config(), dtype=torch.float32)
    double = LensSimulator(_config(), dtype=torch.float64)
    a, b = single.render(single.sample(0, range(3))), double.render(double.sample(0, range(3)))
    assert a.dtype == torch.float32 and b.dtype == torch.float64
    assert (a.double() - b).abs().max() < 1e-4 * b.abs().max()


def test_labels_default_to_index_modulo_classes_and_truth_describes_each_image():
    sim = LensSimulator(_config(), dtype=torch.float32)
    batch = sim.simulate(0, [0, 1, 2, 5])
    assert batch.labels.tolist() == [0, 1, 2, 2] and batch.images.shape == (4, 33, 33)
    assert sim.simulate(0, [0, 1], labels=[2, 2]).labels.tolist() == [2, 2]
    axion, cdm, no_sub = (batch.truth.for_image(i) for i in range(3))
    json.dumps([axion, cdm, no_sub])
    assert axion["class_name"] == "axion" and -24 <= axion["log10_axion_mass"] <= -22
    half = 0.03 * 1e-22 / axion["axion_mass_ev"]
    (x0, y0), (x1, y1) = axion["vortex_endpoints"]
    assert math.isclose(math.hypot(x1 - x0, y1 - y0), 2 * half, rel_tol=1e-5)
    assert len(cdm["subhalo_masses"]) == 25 and all(1e6 <= m <= 1e10 for m in cdm["subhalo_masses"])
    assert all(0.25 - 1e-6 <= math.hypot(*xy) <= 2.0 + 1e-6 for xy in cdm["subhalo_positions"])
    assert no_sub["subhalo_positions"] == [] and no_sub["vortex_endpoints"] is None
    assert abs(no_sub["theta_E"] - 1.2815) < 1e-3 and no_sub["image_size"] == 33


def test_counts_are_non_negative_integers_with_the_deeplense_noise():
    images = LensSimulator(_config(), dtype=torch.float32).simulate(0, range(3)).images
    assert bool((images >= 0).all()) and torch.equal(images, images.round())


@pytest.mark.parametrize(("vortex_model", "vortex_points"), [("line", 100), ("points", 20), ("points", 21)])
@pytest.mark.parametrize(("image_size", "supersampling"), [(33, 1), (35, 1), (33, 3)])
def test_an_axion_vortex_through_the_centre_pixel_of_an_odd_image_still_turns_exactly(
    vortex_model, vortex_points, image_size, supersampling
):
    # With an odd size (and odd supersampling) a ray sits exactly on the vortex centre, i.e. on the line of
    # mass, where the across-line deflection jumps; it must take the value a quarter turn leaves unchanged.
    cfg = _config(image_size=image_size, supersampling=supersampling, vortex_model=vortex_model,
                  vortex_points=vortex_points, shear_range=(0, 0.1))  # fmt: skip
    sim = LensSimulator(cfg, dtype=torch.float64)
    p = sim.sample(7, range(4), labels=[0, 0, 0, 0])  # axion only
    image = sim.render(p)
    for k in (1, 2, 3):
        turned = sim.render(p.rotated90(k))
        assert (turned - torch.rot90(image, k, dims=(-2, -1))).abs().max() < 1e-12 * image.abs().max()


def _vortex_deflection(sim, params):
    """The axion image's deflection minus that of the same scene without its vortex, ``[B, H, W]`` each."""
    ax, ay = sim.deflection(params)
    bx, by = sim.deflection(params.replace(vortex_theta_E=params.vortex_theta_E * 0))
    return ax - bx, ay - by


def test_model_i_draws_the_vortex_as_the_recipes_100_point_masses():
    from eqlens.simulation.simulator import point_mass_sum, vortex_points

    config = get_config("model_i")
    assert (config.vortex_model, config.vortex_points) == ("points", 100)
    sim = LensSimulator(config, dtype=torch.float64)
    p = sim.sample(0, [0, 3], labels=[0, 0])  # two axion lenses
    vx, vy = _vortex_deflection(sim, p)
    px, py = point_mass_sum(*sim.grid, *vortex_points(p, 100))
    assert torch.allclose(vx, px, rtol=0, atol=1e-12) and torch.allclose(vy, py, rtol=0, atol=1e-12)


def test_model_i_line_draws_the_same_scenes_with_the_closed_form_line():
    from eqlens.simulation import config_names, registered_name
    from eqlens.simulation.profiles import UniformLine

    line, points = get_config("model_i_line"), get_config("model_i")
    assert "model_i_line" in config_names() and line.vortex_model == "line"
    assert line.same_scenes(points)
    assert registered_name(dataclasses.replace(points, vortex_model="line")) == "model_i_line"
    sim = LensSimulator(line, dtype=torch.float64)
    p = sim.sample(0, [0, 3], labels=[0, 0])
    vx, vy = _vortex_deflection(sim, p)
    cols = (t[:, None, None] for t in (p.vortex_theta_E, p.vortex_half_length, p.vortex_angle, p.vortex_center_x,
                                      p.vortex_center_y))
    lx, ly = UniformLine.deflection(*sim.grid, *cols)
    assert torch.allclose(vx, lx, rtol=0, atol=1e-12) and torch.allclose(vy, ly, rtol=0, atol=1e-12)
    # the two forms are different images of the same lenses
    same_scenes = LensSimulator(points, dtype=torch.float64).sample(0, [0, 3], labels=[0, 0])
    assert torch.equal(same_scenes.vortex_angle, p.vortex_angle)
    assert not torch.allclose(sim.render(p), LensSimulator(points, dtype=torch.float64).render(p))
