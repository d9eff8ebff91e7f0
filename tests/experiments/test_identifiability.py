"""Promises of the ideal-observer S/N: zero for no change, growing with the change, and the axion mass
acting through the vortex length alone (tiny 48 px scenes)."""

import dataclasses
import math

import pytest
import torch

from eqlens.cli import main
from eqlens.experiments.identifiability import (
    axion_mass_signal,
    change_signal_to_noise,
    regression_r2_bound,
    with_axion_mass,
)
from eqlens.simulation import LensSimulator, SimulationConfigError, get_config

SMALL = dataclasses.replace(get_config("model_i"), image_size=48, pixel_scale=0.1)


def axion_scenes(n=6):
    simulator = LensSimulator(SMALL)
    labels = torch.full((n,), SMALL.class_names.index("axion"))
    return simulator, simulator.sample(0, list(range(n)), labels=labels)


def test_the_sampled_vortex_length_is_the_one_its_mass_gives():
    _, scenes = axion_scenes()
    again = with_axion_mass(scenes, SMALL, 0.0)  # any mass, then each scene's own back, one at a time
    for i, m in enumerate(scenes.log10_axion_mass.tolist()):
        own = with_axion_mass(again, SMALL, m)
        assert own.vortex_half_length[i].item() == pytest.approx(scenes.vortex_half_length[i].item(), rel=1e-5)
    assert torch.equal(again.vortex_angle, scenes.vortex_angle)
    assert torch.equal(again.vortex_theta_E, scenes.vortex_theta_E)


def test_no_change_has_no_signal_and_a_longer_vortex_has_more():
    simulator, scenes = axion_scenes()
    heavy = with_axion_mass(scenes, SMALL, -22.0)
    assert torch.equal(change_signal_to_noise(simulator, heavy, heavy), torch.zeros(6, dtype=torch.float64))
    snr = [change_signal_to_noise(simulator, heavy, with_axion_mass(scenes, SMALL, m)).median().item()
           for m in (-22.5, -23.0, -23.5, -24.0)]
    assert snr == sorted(snr) and snr[-1] > 3.0


def test_the_signal_scales_with_the_square_root_of_the_exposure():
    simulator, scenes = axion_scenes()
    base, light = with_axion_mass(scenes, SMALL, -22.0), with_axion_mass(scenes, SMALL, -24.0)
    deeper = dataclasses.replace  # four times the exposure and no background: S/N doubles
    quiet = {"background_rms": torch.zeros_like(scenes.background_rms)}
    snr1 = change_signal_to_noise(simulator, deeper(base, **quiet), deeper(light, **quiet))
    snr4 = change_signal_to_noise(simulator, deeper(base, exposure=4 * base.exposure, **quiet),
                                  deeper(light, exposure=4 * light.exposure, **quiet))
    torch.testing.assert_close(snr4, 2 * snr1)


def test_the_mass_curve_and_its_r2_ceiling():
    result = axion_mass_signal(SMALL, [-24.0, -23.0, -22.0], n=4)
    rows = result["rows"]
    assert [r["log10_mass"] for r in rows] == [-24.0, -23.0, -22.0] and result["reference"] == -22.0
    assert rows[-1]["snr_median"] == 0.0 and rows[0]["snr_median"] > rows[1]["snr_median"]
    assert rows[0]["half_length_arcsec"] == pytest.approx(3.0)
    bound = regression_r2_bound(result)
    assert 0.0 <= bound <= 1.0 and math.isfinite(bound)


def test_a_config_without_axions_and_a_scene_without_a_vortex_are_refused():
    with pytest.raises(SimulationConfigError, match="no axion class"):
        axion_mass_signal("binary", n=2)
    simulator = LensSimulator(SMALL)
    plain = simulator.sample(0, [0, 1], labels=torch.tensor([2, 2]))
    with pytest.raises(SimulationConfigError, match="axion"):
        with_axion_mass(plain, SMALL, -23.0)


def test_cli_prints_the_table(tmp_path, capsys):
    out = tmp_path / "signal.json"
    assert main(["signal", "--masses=-24,-22", "--n", "2", "--json", str(out)]) == 0
    assert "| -24.00 |" in capsys.readouterr().out and out.exists()
    assert main(["signal", "--masses", "heavy"]) == 2
