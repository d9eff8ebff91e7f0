"""Promises of the robustness table: the new shifts change only what they name, crop checkpoints meet
other pixels with their crop's field of view (stated) instead of crashing, shifts that make no sense for a
population say why, every accuracy has its binomial s.e., McNemar pairs only the same lenses, and the
record the app reads round-trips through the docs' markers."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch

from eqlens.checkpoint import load_checkpoint, write_checkpoint
from eqlens.data.transforms import InputSpec
from eqlens.errors import DataError
from eqlens.experiments.generalisation import evaluate_shifts, fitted_crop, lenses_key, paired_tests
from eqlens.experiments.robustness import (
    BEGIN,
    END,
    load_record,
    markdown_table,
    model_robustness,
    replace_between_markers,
    robustness_record,
    write_record,
)
from eqlens.experiments.shifts import get_shift, shifted_config
from eqlens.experiments.statistics import binomial_se, mcnemar
from eqlens.simulation import get_config, sample_parameters
from eqlens.simulation.sampling import main_lens_theta_E

from .conftest import TINY


def _fields_differing(a, b) -> set[str]:
    return {f.name for f in dataclasses.fields(a)
            if not torch.equal(torch.nan_to_num(getattr(a, f.name)), torch.nan_to_num(getattr(b, f.name)))}


@pytest.mark.parametrize(("name", "fraction"), [("theta_e_1pct", 0.01), ("theta_e_3pct", 0.03), ("theta_e_10pct", 0.1)])
def test_theta_e_shifts_jitter_only_the_einstein_radius_by_their_fraction(name, fraction):
    base = get_config("model_i")
    shifted = shifted_config(base, name)
    theta = main_lens_theta_E(base)
    assert shifted.theta_E_range == pytest.approx(((1 - fraction) * theta, (1 + fraction) * theta))
    p0, p1 = (sample_parameters(c, 5, range(30)) for c in (base, shifted))
    assert _fields_differing(p0, p1) == {"theta_E"}
    assert float((p1.theta_E / theta - 1).abs().max()) <= fraction and float((p1.theta_E / theta - 1).abs().max()) > 0


def test_lens_angle_turns_the_lens_and_keeps_its_ellipticity():
    configs = (get_config("model_i"), shifted_config("model_i", "lens_angle"))
    p0, p1 = (sample_parameters(c, 5, range(30)) for c in configs)
    assert _fields_differing(p0, p1) == {"lens_e1", "lens_e2"}
    assert torch.allclose(torch.hypot(p1.lens_e1, p1.lens_e2), torch.hypot(p0.lens_e1, p0.lens_e2))


def test_the_narrow_source_shift_draws_sizes_in_its_range_only():
    p = sample_parameters(shifted_config("model_i", "source_size_narrow"), 5, range(30))
    assert float(p.source_R_sersic.min()) >= 0.2 and float(p.source_R_sersic.max()) <= 0.3


def test_tnfw_is_each_populations_own_tnfw_twin():
    for base, twin in (("model_i", "model_i_tnfw"), ("model_i_varied", "model_i_varied_tnfw")):
        assert dataclasses.replace(shifted_config(base, "tnfw"), name=twin) == get_config(twin)


def test_population_shifts_swap_the_lenses_and_keep_the_instrument_classes_and_vortex_form():
    varied = shifted_config("model_i_line", "model_i_varied")
    assert varied.vortex_model == "line" and dataclasses.replace(varied, name="x", vortex_model="points") == \
        dataclasses.replace(get_config("model_i_varied"), name="x")
    back = shifted_config("model_i_varied", "model_i")
    assert dataclasses.replace(back, name="model_i") == get_config("model_i")
    tiny_varied = shifted_config(TINY, "model_i_varied")
    assert (tiny_varied.image_size, tiny_varied.pixel_scale) == (TINY.image_size, TINY.pixel_scale)


def test_shifts_that_mean_nothing_for_a_population_say_why():
    varied, binary = get_config("model_i_varied"), get_config("binary")
    assert "already draws theta_E" in get_shift("theta_e_1pct").reason_not_applicable(varied)
    assert "already draws R_sersic" in get_shift("source_size_narrow").reason_not_applicable(varied)
    assert "not model_i_varied's" in get_shift("model_i_varied").reason_not_applicable(binary)
    assert get_shift("tnfw").reason_not_applicable(binary) is None
    assert get_shift("theta_e_1pct").reason_not_applicable(get_config("model_i")) is None
    # an axis-ratio population takes the |e| shift without a clash of the two ranges
    assert shifted_config(varied, "ellipticity").lens_axis_ratio_range is None


def test_a_crop_keeps_its_field_of_view_on_other_pixels_and_refuses_one_that_does_not_fit():
    model_i, model_ii = get_config("model_i"), shifted_config("model_i", "model_ii_resized")
    assert fitted_crop(model_i, model_i, 81) == (81, None)
    crop, note = fitted_crop(model_i, model_ii, 81)
    assert crop == 40 and (64 - crop) % 2 == 0 and "4.05\"" in note and "resized" in note
    with pytest.raises(DataError, match="does not fit"):
        fitted_crop(model_i, model_ii, 149)


@pytest.fixture(scope="module")
def crop_checkpoint(checkpoints, tmp_path_factory):
    """The tiny cnn (33 px of TINY's 0.227" pixels) as a crop checkpoint: the central 27 px (6.14"), resized to 33."""
    model, card = load_checkpoint(checkpoints["cnn"])
    out = tmp_path_factory.mktemp("crop") / "cnn_crop"
    write_checkpoint(out, model, card.replace(input=InputSpec(33, 27, True)))
    return str(out)


def test_a_crop_checkpoint_runs_model_ii_resized_and_the_report_says_how(crop_checkpoint):
    report = evaluate_shifts([crop_checkpoint], "model_ii_resized,theta_e_1pct", size=3, device="cpu")
    rows = {r["shift"]: r for r in report["rows"]}
    assert set(rows) == {"none", "model_ii_resized", "theta_e_1pct"} and not report["skipped"]
    # 27 px of 0.227" (6.14") on the 64 px, 0.1" frame: 62 px (even, centred on the grid), resized to 33
    assert "central 62 px" in rows["model_ii_resized"]["input_note"] and "input_note" not in rows["none"]
    for r in rows.values():
        assert r["accuracy_se"] == pytest.approx(binomial_se(r["accuracy"], 3)) and len(r["correct"]) == 3


def test_binomial_se_and_the_exact_mcnemar_test():
    assert binomial_se(0.9, 100) == pytest.approx(0.03) and math.isnan(binomial_se(0.5, 0))
    a = [True] * 10 + [False] * 2 + [True] * 5
    b = [False] * 10 + [True] * 2 + [True] * 5
    t = mcnemar(a, b)
    assert (t["a_only"], t["b_only"], t["n"]) == (10, 2, 17)
    assert t["p_value"] == pytest.approx(2 * sum(math.comb(12, k) for k in range(3)) / 2**12)
    assert mcnemar(a, a)["p_value"] == 1.0
    with pytest.raises(ValueError, match="same lenses"):
        mcnemar(a, b[:-1])


def test_mcnemar_pairs_rows_only_when_they_saw_the_same_lenses():
    key = lenses_key(get_config("model_i"), 0, 4)
    assert key != lenses_key(get_config("model_i_line"), 0, 4) and key == lenses_key(get_config("model_i"), 0, 4)
    rows = [{"label": "f", "shift": "none", "lenses": key, "correct": [True] * 4},
            {"label": "t", "shift": "none", "lenses": key, "correct": [False] * 4},
            {"label": "f", "shift": "tnfw", "lenses": "a", "correct": [True] * 4},
            {"label": "t", "shift": "tnfw", "lenses": "b", "correct": [True] * 4}]
    (test,) = paired_tests(rows, [("f", "t")])
    assert test["shift"] == "none" and test["difference"] == 1.0 and test["a_only"] == 4


def test_the_record_scores_every_checkpoint_keeps_unchanged_ones_and_feeds_the_docs_and_the_app(checkpoints,
                                                                                                 tmp_path):
    sources = [checkpoints["gcnn"], checkpoints["cnn"]]
    saved = []
    record = robustness_record(sources, ["theta_e_1pct", "model_i"], size=3, log=lambda m: None,
                               on_checkpoint=saved.append)
    assert set(record["checkpoints"]) == {"gcnn", "cnn"}
    assert [list(r["checkpoints"]) for r in saved] == [["gcnn"], ["gcnn", "cnn"]]  # saved as it goes
    gcnn = record["checkpoints"]["gcnn"]
    assert [r["shift"] for r in gcnn["rows"]] == ["none", "theta_e_1pct"] and len(gcnn["rows"][0]["correct"]) == 3
    assert gcnn["skipped"] == [{"shift": "model_i", "reason": "leaves the training config unchanged"}]
    path = write_record(record, tmp_path / "robustness.json")
    logs = []
    again = robustness_record(sources, ["theta_e_1pct", "model_i"], size=3, previous=load_record(path), log=logs.append)
    assert again["checkpoints"] == record["checkpoints"] and all("kept" in m for m in logs)

    table = markdown_table(record)
    assert "| gcnn | tiny_model_i | " in table and " ± " in table and "| = |" in table
    docs = replace_between_markers(f"intro\n{BEGIN}\nold\n{END}\nafter\n", table)
    assert docs.startswith("intro\n") and docs.endswith(f"{END}\nafter\n") and "old" not in docs
    assert replace_between_markers(docs, "new") == f"intro\n{BEGIN}\nnew\n{END}\nafter\n"

    chart = model_robustness(load_record(path), "gcnn")
    assert chart["chance"] == pytest.approx(1 / 3) and chart["rows"][0]["shift"] == "none"
    assert all({"accuracy", "accuracy_se", "description"} <= set(r) for r in chart["rows"])
    assert model_robustness(load_record(path), "absent") is None and load_record(tmp_path / "none.json") is None
