"""The Gallery and What-if pages: the gallery file is what its script computes, a click opens a lens in
Explore or What-if, a slider re-renders the scene and the model follows; on the shipped flagship, the
theta_E shortcut a researcher should see."""

from __future__ import annotations

import importlib.util
import json

import numpy as np
import pytest
import torch

from app import catalog
from eqlens.analysis import gallery

from .conftest import ROOT, no_exception

GALLERY = ROOT / "app" / "gallery.json"
FLAGSHIP = ROOT / "checkpoints" / "model_i_flagship"


def recorded() -> dict:
    return json.loads(GALLERY.read_text())


def chosen_lenses(section: dict) -> list[dict]:
    """A section's picks without the model's reading (which the truth alone cannot recompute)."""
    return [{k: v for k, v in p.items() if k != "probabilities"} for p in section["picks"]]


def test_the_gallery_file_holds_what_the_package_chooses_today():
    """scripts/build_gallery.py's truth sections, recomputed (sampling only): rebuild the file when this fails."""
    record = recorded()
    seeds = range(*record["seeds"])
    fresh = {s.key: s.to_dict() for s in (gallery.class_section(seeds=seeds), gallery.vortex_section(seeds=seeds),
                                          gallery.subhalo_section(seeds=seeds))}
    stored = {s["key"]: s for s in record["sections"]}
    for key, section in fresh.items():
        assert stored[key] == section, f"app/gallery.json's {key} section is stale: run scripts/build_gallery.py"
    population = gallery.population_section(seeds=seeds).to_dict()
    assert chosen_lenses(stored["population"]) == chosen_lenses(population)


@pytest.mark.skipif(not FLAGSHIP.is_dir(), reason="no shipped flagship")
def test_the_gallery_s_recorded_predictions_are_the_shipped_flagship_s():
    from eqlens.checkpoint import load_checkpoint, predict, read_checkpoint
    from eqlens.checkpoint.transfer import weights_digest

    record = recorded()
    assert record["model"]["weights_sha256"] == weights_digest(read_checkpoint(FLAGSHIP)[0])
    model, card = load_checkpoint(FLAGSHIP)
    stored = {s["key"]: s for s in record["sections"]}
    for key in ("errors", "population"):
        picks = [gallery.Pick.from_dict(p) for p in stored[key]["picks"]]
        by_config = {}
        for p in picks:
            by_config.setdefault(p.config, []).append(p)
        for config, group in by_config.items():
            images = gallery.render_candidates(config, [(p.class_index, p.seed) for p in group])
            with torch.no_grad():
                probs = predict(model, card, images).values.numpy()
            np.testing.assert_allclose(probs, [p.probabilities for p in group], atol=2e-4)
    assert all(np.argmax(p["probabilities"]) != p["class_index"] for p in stored["errors"]["picks"])


def test_a_gallery_thumbnail_opens_its_lens_in_explore(app_test):
    at = app_test("views/gallery.py")
    no_exception(at)
    assert at.title[0].value == "Gallery"
    sections = recorded()["sections"]
    assert [s.value for s in at.subheader] == [sections[0]["title"]]  # one section at a time
    at.session_state["gallery_section"] = "all"
    at.run()
    assert [s.value for s in at.subheader] == [s["title"] for s in sections]
    first = recorded()["sections"][0]["picks"][0]
    at.button(key="gallery_open_classes_0").click().run()
    no_exception(at)
    assert at.title[0].value == "Explore"
    assert any(f"simulated {first['config']} / {first['class_name']} / seed {first['seed']}" in i.value
               for i in at.info)


def test_a_gallery_lens_opens_in_the_what_if_editor(app_test):
    at = app_test("views/gallery.py")
    population = next(s for s in recorded()["sections"] if s["key"] == "population")
    pick = population["picks"][0]
    at.session_state["gallery_section"] = population["title"]
    at.run()
    at.button(key="gallery_whatif_population_0").click().run()
    no_exception(at)
    assert at.title[0].value == "What if"
    assert (at.session_state["whatif_config"], at.session_state["whatif_seed"]) == (pick["config"], pick["seed"])
    assert any(f"seed {pick['seed']}, edited" in c.value for c in at.caption)


def scene_row(at, parameter: str) -> dict:
    table = at.dataframe[0].value  # the page's one table: the scene, drawn beside edited
    return table[table["parameter"] == parameter].iloc[0].to_dict()


def test_dragging_theta_e_re_renders_the_scene_and_the_model_follows(app_test):
    at = app_test("views/whatif.py", whatif_model=catalog.untrained_key("cnn", "C1"))
    no_exception(at)
    before = at.session_state["whatif_slider_theta_E"]
    probs = at.get("plotly_chart")[1].proto.spec
    assert scene_row(at, "Einstein radius theta_E (arcsec)")["changed"] == ""
    at.slider(key="whatif_slider_theta_E").set_value(round(before * 1.2, 4)).run()
    no_exception(at)
    row = scene_row(at, "Einstein radius theta_E (arcsec)")
    assert row["changed"] == "●" and float(row["edited"]) == pytest.approx(before * 1.2, abs=1e-3)
    assert scene_row(at, "exposure (s)")["changed"] == ""  # only what was dragged
    recipe = float(scene_row(at, "main halo mass within theta_E (recipe Msun)")["edited"])
    physical = float(scene_row(at, "main halo mass within theta_E (physical Msun)")["edited"])
    assert physical == pytest.approx(0.593 * recipe, rel=2e-3)  # physical_mass_factor of Model I
    assert at.get("plotly_chart")[1].proto.spec != probs
    if importlib.util.find_spec("eqlens.analysis.detectability") is not None:  # the ideal observer beside it
        assert float(next(m.value for m in at.metric if m.label == "ideal observer: D_sub")) > 0
    at.button(key="whatif_reset").click().run()
    assert scene_row(at, "Einstein radius theta_E (arcsec)")["changed"] == ""


@pytest.mark.skipif(not FLAGSHIP.is_dir(), reason="no shipped flagship")
def test_the_flagship_calls_a_no_sub_lens_cdm_when_its_ring_grows_by_one_percent(app_test, monkeypatch):
    """The shortcut: Model I fixes theta_E, and the flagship reads a 1 % larger ring as substructure."""
    from app import settings

    monkeypatch.setattr(settings, "CHECKPOINT_DIR", ROOT / "checkpoints")
    at = app_test("views/whatif.py", whatif_model=catalog.flagship_key(), whatif_config="model_i",
                  whatif_class_model_i=2, whatif_seed=1004)
    prediction = next(m.value for m in at.markdown if m.value.startswith("**truth:**"))
    assert "`no_sub`" in prediction.split("prediction:")[1]
    theta = at.session_state["whatif_slider_theta_E"]
    at.slider(key="whatif_slider_theta_E").set_value(round(theta * 1.01, 4)).run()
    no_exception(at)
    prediction = next(m.value for m in at.markdown if m.value.startswith("**truth:**"))
    assert "`cdm`" in prediction.split("prediction:")[1] and "✗" in prediction
