"""AppTest of Misclassified and Compare (issue 15): the test data follows a checkpoint's card, calibration
and exports, a misclassified lens's scene; Compare's default pair, its exact-angle plot and the turned sky;
the model-card panel."""

from __future__ import annotations

import json
import shutil

import pytest

from app import card_panel, catalog, state

from .conftest import ROOT, no_exception
from .test_pages import write_tiny_checkpoint

MODEL_I = ["axion", "cdm", "no_sub"]


def test_misclassified_follows_a_binary_checkpoint_to_binary_lenses_and_evaluates_it(app_test, checkpoint_dir):
    shutil.copytree(ROOT / "checkpoints" / "binary_gcnn", checkpoint_dir / "binary_gcnn")
    write_tiny_checkpoint(checkpoint_dir, "model_i_cnn", "cnn", "model_i", MODEL_I)
    at = app_test("views/misclassified.py", mis_model=f"ckpt:{checkpoint_dir / 'binary_gcnn'}")
    assert at.selectbox(key="mis_data").value == "binary"
    assert at.selectbox(key="mis_data").options == ["binary"]  # model_i's classes are not the model's
    at.button(key="mis_evaluate").click().run()
    no_exception(at)
    assert not at.error, [e.value for e in at.error]
    assert {m.label for m in at.metric} >= {"accuracy", "macro AUC", "calibration error (ECE)"}
    # confusion, ROC, calibration, predictions, all metrics, the error anatomy
    assert len(at.get("download_button")) == 6
    assert any(s.value == "Where the errors lie" for s in at.subheader)
    report = at.session_state[state.EVALUATION]
    predicted = report["probabilities"].argmax(1)
    wrong = {name: int(((report["labels"] == k) & (predicted != k)).sum()) for k, name in enumerate(["no_sub", "sub"])}
    anatomy_class = at.selectbox(key="mis_anatomy_class")  # the class with the most errors first
    assert anatomy_class.value == max(wrong, key=wrong.get)
    chosen = anatomy_class.value
    total = int((report["labels"] == ["no_sub", "sub"].index(chosen)).sum())
    assert any(c.value.startswith(f"{wrong[chosen]} of {total} true {chosen} lenses misclassified") for c in at.caption)
    lines = {b.feature.name for b in report["anatomy"] if b.class_name == "sub"}
    assert {"mass_near_ring", "subhalo_mass_total", "exposure"} <= lines
    assert not any(b.feature.name == "vortex_length" for b in report["anatomy"])
    at.selectbox(key="mis_model").set_value(f"ckpt:{checkpoint_dir / 'model_i_cnn'}").run()
    # its card records no simulation config: written before 2026-12-02, its lenses drew the vortex as a line
    assert at.selectbox(key="mis_data").value == "model_i_line"


def test_a_misclassified_lens_opened_from_the_gallery_shows_its_scene_with_mass_units(app_test):
    at = app_test("views/misclassified.py", mis_model=catalog.untrained_key("cnn", "C1"))
    at.button(key="mis_evaluate").click().run()
    scene = [b for b in at.button if b.key and b.key.startswith("mis_scene_")]
    assert scene, "an untrained model gets some test lenses wrong"
    index = int(scene[0].key.rsplit("_", 1)[1])
    scene[0].click().run()
    no_exception(at)
    assert any(s.value.startswith(f"Test image #{index}") for s in at.subheader)
    what = list(at.dataframe[0].value["parameter"])
    assert "Einstein radius theta_E (main lens)" in what and "main-lens mass inside theta_E (physical)" in what
    assert any("recipe units" in c.value and "physical Msun" in c.value for c in at.caption)
    at.button(key="mis_explore_opened").click().run()
    assert at.title[0].value == "Explore"
    assert any(f"test image #{index}" in i.value.replace("\\", "") for i in at.info)  # Markdown-escaped text


@pytest.mark.parametrize("twin", [True, False])
def test_compare_opens_on_the_flagship_against_its_twin_else_the_plain_cnn(app_test, checkpoint_dir, twin):
    for name, model in (("model_i_cnn", "cnn"), ("model_i_flagship", "gcnn"), ("model_i_gcnn", "gcnn")):
        write_tiny_checkpoint(checkpoint_dir, name, model, "model_i", MODEL_I)
    if twin:
        write_tiny_checkpoint(checkpoint_dir, "model_i_flagship_twin", "cnn", "model_i", MODEL_I)
    at = app_test("views/compare.py")
    no_exception(at)
    assert at.selectbox(key="compare_a_model").value.endswith("/model_i_flagship")
    assert at.selectbox(key="compare_b_model").value.endswith("/model_i_flagship_twin" if twin else "/model_i_cnn")
    assert any("nothing interpolated" in c.value for c in at.caption)
    assert sum("model card" in m.value for m in at.markdown) == 2


def test_compare_turns_the_sky_for_a_simulated_lens(app_test, checkpoint_dir):
    write_tiny_checkpoint(checkpoint_dir, "model_i_flagship", "gcnn", "model_i", MODEL_I)
    write_tiny_checkpoint(checkpoint_dir, "model_i_cnn", "cnn", "model_i", MODEL_I)
    at = app_test("views/compare.py")
    assert not at.toggle(key="compare_sky").disabled
    at.toggle(key="compare_sky").set_value(True).run()
    at.slider(key="compare_angle").set_value(30.0).run()
    no_exception(at)
    assert any(c.value.startswith("Turned sky") for c in at.caption)


def shipped_card(name: str) -> dict:
    return json.loads((ROOT / "checkpoints" / name / "model_card.json").read_text())


def test_the_card_panel_says_eqcvt_is_equivariant_only_in_its_first_block():
    facts = card_panel.card_facts(shipped_card("model_i_eqcvt"))
    assert "first block only" in card_panel.equivariance_line(facts)
    assert card_panel.equivariance_line(card_panel.card_facts(shipped_card("model_i_gcnn"))).startswith("every layer")
    assert card_panel.equivariance_line(card_panel.card_facts(shipped_card("model_i_cnn"))).startswith("none")


def test_the_card_panel_names_no_group_for_a_plain_model_and_its_measured_turns_as_the_probe_groups():
    def lines(card):
        return dict(card_panel.card_lines(card_panel.card_facts(card)))

    for name in ("model_i_cnn", "model_i_flagship_twin", "model_i_vit"):
        plain = lines(shipped_card(name))
        assert "no group (a plain model)" in plain["model"], name
        assert "exact rotations of the probe group C4" in plain["equivariant"], name
    old = shipped_card("model_i_cnn")  # as written before issue 14: a plain model "in C4"
    old["group"] = old["model"]["build_config"]["group"] = "C4"
    assert lines(old) == lines(shipped_card("model_i_cnn"))
    gcnn = lines(shipped_card("model_i_gcnn"))
    assert "group C4" in gcnn["model"] and "probe group" not in gcnn["equivariant"]


def test_a_plain_model_is_turned_by_its_probe_group_and_labelled_without_one(checkpoint_dir):
    shutil.copytree(ROOT / "checkpoints" / "model_i_cnn", checkpoint_dir / "model_i_cnn")
    trained = catalog.load(f"ckpt:{checkpoint_dir / 'model_i_cnn'}")
    assert trained.card.group is None and trained.group.name == "C4"  # the card's probe group
    untrained = catalog.load(catalog.untrained_key("cnn", "C1"))
    assert untrained.card.group is None and untrained.group.name == "C1" and untrained.label == "cnn (untrained)"
    gcnn = catalog.load(catalog.untrained_key("gcnn", "C8"))
    assert gcnn.card.group == gcnn.group.name == "C8" and gcnn.label == "gcnn C8 (untrained)"


def test_the_card_panel_gives_input_test_split_and_a_partial_run_from_the_card():
    card = shipped_card("model_i_flagship")
    facts = card_panel.card_facts(card)
    lines = dict(card_panel.card_lines(facts))
    crop = card["input"]["crop"]
    assert f"central {crop}x{crop}" in lines["input"]
    test = card["metrics"]["test"]
    assert f"{test['accuracy']:.3f}" in lines["test"] and f"of {test['n']} images" in lines["test"]
    assert f"{card['training']['images_seen']:,} images seen" in lines["training"]
    assert ("partial" in lines["training"]) == (card["training"].get("complete") is False)
    assert card_panel.card_facts({}) is None


def test_the_card_panel_reads_the_runs_settings_through_the_cards_one_reading_with_todays_defaults():
    """A record that leaves a setting out means the trainer's default for it (augment: on, with image
    turns; 40 epochs), as ModelCard.train_config reads it: the panel has no defaults of its own."""
    card = shipped_card("model_i_gcnn")
    config = card["training"]["config"]
    for key in ("augment", "augment_mode", "epochs"):
        config.pop(key)
    card["training"].pop("images_seen", None)  # cards of epoch-based runs never had it
    facts = card_panel.card_facts(card)
    assert facts.augment_mode == "image" and facts.epochs == 40
    assert facts.images_seen == card["training"]["epochs_done"] * config["train_size"]
    assert not facts.images_seen_exact


def test_compare_says_beside_its_invariance_error_that_eqcvt_is_equivariant_only_in_its_first_block(
        app_test, checkpoint_dir):
    for name in ("model_i_eqcvt", "model_i_cnn"):
        shutil.copytree(ROOT / "checkpoints" / name, checkpoint_dir / name)
    at = app_test("views/compare.py", compare_a_model=f"ckpt:{checkpoint_dir / 'model_i_eqcvt'}")
    no_exception(at)
    assert any("equivariant only in its first block" in c.value for c in at.caption)


def test_the_scene_of_an_axion_lens_gives_its_mass_in_ev_and_every_mass_in_both_units():
    from eqlens.data.simulated import SimulatedLensDataset
    from eqlens.simulation.scene import MASS_UNIT, PHYSICAL_MASS_UNIT, mass_note, scene_parameters, subhalo_rows

    data = SimulatedLensDataset("model_i", "test", size=3)
    axion, cdm = data.truth(0), data.truth(1)  # item i has class i % 3: axion, cdm, no_sub
    rows = {r["parameter"]: r for r in scene_parameters(axion)}
    assert rows["axion mass m_a"]["unit"] == "eV"
    assert rows["vortex mass (spread along the line)"]["unit"] == MASS_UNIT
    assert rows["vortex mass (spread along the line)"]["value"] == 3e10
    assert rows["vortex mass (spread along the line) (physical)"]["value"] == pytest.approx(3e10 * 0.5927, rel=1e-3)
    assert not subhalo_rows(axion)
    rows = scene_parameters(cdm)
    assert len(subhalo_rows(cdm)) == len(cdm["subhalo_masses"]) > 0
    assert {r["unit"] for r in rows if "mass" in r["parameter"]} == {MASS_UNIT, PHYSICAL_MASS_UNIT}
    # the main lens: Model I's 1e12 halo is the mass inside its Einstein radius
    main = {r["parameter"]: r["value"] for r in rows}
    assert main["main-lens mass inside theta_E"] == pytest.approx(1e12, rel=1e-6)
    assert main["main-lens mass inside theta_E (physical)"] == pytest.approx(5.927e11, rel=1e-3)
    assert "1.2815" in mass_note(cdm) and "0.593" in mass_note(cdm)


def test_compare_shows_a_model_trained_on_turned_renderings_the_turned_sky_first(app_test, checkpoint_dir):
    from eqlens.checkpoint import make_card, write_checkpoint
    from eqlens.models import create

    net = create("gcnn", num_classes=3, group="C4", image_size=33)
    card = make_card(net, class_names=MODEL_I, group="C4", data={"kind": "simulated", "spec": "model_i"},
                     training={"config": {"augment": True, "augment_mode": "scene"}}, input_spec={"image_size": 33})
    write_checkpoint(checkpoint_dir / "model_i_flagship", net, card)
    write_tiny_checkpoint(checkpoint_dir, "model_i_cnn", "cnn", "model_i", MODEL_I)
    at = app_test("views/compare.py")
    no_exception(at)
    assert at.toggle(key="compare_sky").value
    assert any(c.value.startswith("Turned sky") for c in at.caption)
    assert len([m for m in at.metric if m.label.startswith("invariance error")]) == 2  # the picture's quarter turns
    at.selectbox(key="compare_a_model").set_value(f"ckpt:{checkpoint_dir / 'model_i_cnn'}").run()
    assert not at.toggle(key="compare_sky").value  # a model of resampled pictures: the picture first


def test_the_card_panel_says_how_the_run_saw_its_rotations():
    card = shipped_card("model_i_flagship")
    for mode, words in (("scene", "turned renderings (scene"), ("image", "resampled pictures (image"),
                        ("mixed", "half of them also resampled (mixed")):
        card["training"]["config"]["augment_mode"] = mode
        assert words in dict(card_panel.card_lines(card_panel.card_facts(card)))["training"], mode


def test_the_card_panel_names_an_orbit_average_and_a_derived_checkpoint():
    def lines(card):
        return dict(card_panel.card_lines(card_panel.card_facts(card)))

    card = shipped_card("model_i_flagship")
    card["model"]["build_config"].pop("variant")  # its variant pins the 4 turns: the edited card is unnamed
    card["model"]["build_config"]["orbit_turns"] = 1
    assert "averaged" not in lines(card)["model"] and "without training" not in lines(card)["training"]
    card["model"]["build_config"]["orbit_turns"] = 4
    card["training"]["derived_from"] = {"source": "checkpoints/x", "orbit_turns": 4, "trained": False}
    averaged = lines(card)
    assert "averaged over the picture turned by 0, 22.5, 45, 67.5 deg (4 forwards)" in averaged["model"]
    assert "without training" in averaged["training"]
