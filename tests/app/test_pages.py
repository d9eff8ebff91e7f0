"""AppTest: every page renders, its widgets change what it shows, bad inputs leave it usable."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from app import catalog, state

from .conftest import no_exception, ring_lens

PAGES = ["views/explore.py", "views/compare.py", "views/train.py", "views/misclassified.py", "views/learn.py"]
TITLES = ["Explore", "Compare", "Train", "Misclassified", "Learn: equivariance with lenses"]


def image_captions(at) -> list[str]:
    """The captions of the images and the page's captions (Explore names its lens in one, under its figure)."""
    return [caption for img in at.image for caption in img.captions] + [c.value for c in at.caption]


def logits_caption(at) -> str:
    return next(c.value for c in at.caption if c.value.startswith(("logits:", "log-probabilities (orbit average):")))


@pytest.mark.parametrize(("page", "title"), list(zip(PAGES, TITLES, strict=True)))
def test_every_page_renders_without_an_exception(app_test, page, title):
    at = app_test(page)
    no_exception(at)
    assert at.title[0].value == title


@pytest.mark.parametrize(("page", "title"), list(zip(PAGES, TITLES, strict=True)))
def test_every_page_renders_on_the_shipped_checkpoints_as_a_first_start_shows_it(app_test, monkeypatch, page, title):
    from app import settings

    from .conftest import ROOT

    monkeypatch.setattr(settings, "CHECKPOINT_DIR", ROOT / "checkpoints")  # read only: no page writes on render
    at = app_test(page)
    no_exception(at)
    assert at.title[0].value == title


def test_the_explore_page_shows_a_simulated_lens_by_default(app_test):
    at = app_test()
    no_exception(at)
    assert any("simulated model_i" in caption for caption in image_captions(at))
    assert logits_caption(at)


def test_moving_the_rotation_slider_changes_the_displayed_logits(app_test):
    at = app_test(explore_pinned_lens=ring_lens(), explore_model=catalog.untrained_key("cnn", "C1"))
    before = logits_caption(at)
    at.slider(key="explore_angle").set_value(30.0).run()
    no_exception(at)
    assert logits_caption(at) != before


def test_an_exact_angle_button_puts_the_slider_on_that_angle(app_test):
    at = app_test(explore_pinned_lens=ring_lens(), explore_model=catalog.untrained_key("cnn", "C1"))
    at.button(key="explore_angle_btn_1").click().run()
    assert at.slider(key="explore_angle").value == 90.0


def test_an_invariant_model_shows_the_same_logits_after_a_quarter_turn_and_a_still_stabilised_view(app_test):
    at = app_test(explore_pinned_lens=ring_lens(), explore_model=catalog.untrained_key("gcnn", "C4"),
                  explore_view="Group channels")
    upright = logits_caption(at)
    at.slider(key="explore_angle").set_value(90.0).run()
    no_exception(at)
    assert logits_caption(at) == upright
    stabilised = next(m for m in at.metric if m.label.startswith("|stabilised"))
    assert float(stabilised.value) < 1e-5


def test_turning_the_sky_re_renders_the_simulated_lens_and_keeps_the_upright_prediction(app_test):
    at = app_test(explore_model=catalog.untrained_key("gcnn", "C4"))
    upright = logits_caption(at)
    at.toggle(key="explore_sky").set_value(True).run()
    no_exception(at)
    assert logits_caption(at) == upright  # at 0 deg the rendering is the simulator's own image
    at.slider(key="explore_angle").set_value(30.0).run()
    no_exception(at)
    assert any("sky turned 30 deg" in caption for caption in image_captions(at))
    assert any(c.value.startswith("turned sky") for c in at.caption)
    assert logits_caption(at) != upright


def test_the_sky_toggle_is_off_for_a_picture_that_is_not_simulated(app_test):
    at = app_test(explore_pinned_lens=ring_lens(), explore_model=catalog.untrained_key("cnn", "C1"))
    assert at.toggle(key="explore_sky").disabled
    at.slider(key="explore_angle").set_value(30.0).run()
    no_exception(at)


def test_an_attention_model_gets_head_maps_and_a_rollout(app_test):
    at = app_test(explore_pinned_lens=ring_lens(), explore_model=catalog.untrained_key("eqcvt", "C4"))
    no_exception(at)
    assert not any("no attention" in i.value for i in at.info)
    before = len(at.image)
    at.slider(key="explore_query_row").set_value(3).run()
    no_exception(at)
    assert len(at.image) == before


def test_switching_the_attribution_method_keeps_the_page_working(app_test):
    at = app_test(explore_pinned_lens=ring_lens(), explore_model=catalog.untrained_key("cnn", "C1"))
    at.radio(key="explore_view").set_value("Attributions").run()
    for method in ("saliency", "integrated_gradients", "occlusion"):
        at.selectbox(key="explore_attr_method").set_value(method).run()
        no_exception(at)
        assert any(m.label.startswith("attribution invariance error") for m in at.metric)


def npy_bytes(array) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array)
    return buffer.getvalue()


def png_bytes(height, width) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray((np.random.default_rng(0).random((height, width)) * 255).astype(np.uint8)).save(buffer, "PNG")
    return buffer.getvalue()


@pytest.mark.parametrize(("name", "data", "message"), [
    ("notes.npy", b"this is not numpy", "Cannot use this image"),
    ("nan.npy", npy_bytes(np.full((32, 32), np.nan, dtype=np.float32)), "NaN"),
    ("cube.npy", npy_bytes(np.zeros((3, 4, 32, 32), dtype=np.float32)), "Cannot use this image"),
    ("wide.png", png_bytes(32, 48), "square"),
    ("huge.npy", npy_bytes(np.zeros((2100, 2100), dtype=np.float32)), "too large"),
])
def test_a_bad_upload_gets_a_clear_message_and_the_page_stays_usable(app_test, name, data, message):
    at = app_test()
    at.radio(key="explore_source").set_value("Upload").run()
    at.file_uploader(key="explore_image_upload").upload(name, data).run()
    no_exception(at)
    errors = [e.value for e in at.error]
    assert errors and message in errors[0], errors
    at.radio(key="explore_source").set_value("Simulate").run()
    no_exception(at)
    assert not at.error and logits_caption(at)


def test_a_good_upload_is_analysed(app_test):
    at = app_test()
    at.radio(key="explore_source").set_value("Upload").run()
    image = ring_lens().image
    at.file_uploader(key="explore_image_upload").upload("lens.npy", npy_bytes(image)).run()
    no_exception(at)
    assert not at.error
    assert any("upload lens.npy" in caption for caption in image_captions(at))


def test_a_corrupt_checkpoint_is_refused_with_a_message(app_test):
    at = app_test()
    at.file_uploader(key="explore_ckpt_upload").upload("model.safetensors", b"\x00garbage" * 64).run()
    bad = next(k for k in at.session_state[state.UPLOADED_CHECKPOINTS])
    at.selectbox(key="explore_model").set_value(bad).run()
    no_exception(at)
    assert any("Cannot load this model" in e.value for e in at.error)
    at.selectbox(key="explore_model").set_value(catalog.untrained_key("cnn", "C1")).run()
    assert not at.error


def test_two_sessions_keep_their_own_angle_and_lens(app_test):
    first = app_test(explore_pinned_lens=ring_lens(), explore_model=catalog.untrained_key("cnn", "C1"))
    second = app_test()
    first.slider(key="explore_angle").set_value(45.0).run()
    second.run()
    assert second.slider(key="explore_angle").value == 0.0
    assert "explore_pinned_lens" not in second.session_state


def test_the_compare_page_overlays_two_models_and_follows_its_slider(app_test):
    at = app_test("views/compare.py")
    assert at.selectbox(key="compare_a_model").value != at.selectbox(key="compare_b_model").value
    bars_before = [c for c in at.caption if "probability over the orbit" in c.value]
    at.slider(key="compare_angle").set_value(40.0).run()
    no_exception(at)
    assert len(bars_before) == 2


def write_tiny_checkpoint(folder, name: str, model: str, data: str, class_names: list[str]) -> None:
    from eqlens.checkpoint import make_card, write_checkpoint
    from eqlens.models import create

    net = create(model, num_classes=len(class_names), group="C4", image_size=33)
    card = make_card(net, class_names=class_names, group="C4", data={"kind": "simulated", "spec": data},
                     training={}, input_spec={"image_size": 33})
    write_checkpoint(folder / name, net, card)


def test_compare_pairs_a_checkpoint_with_one_of_its_own_data_and_overlays_different_classes(app_test, checkpoint_dir):
    model_i = ["axion", "cdm", "no_sub"]
    write_tiny_checkpoint(checkpoint_dir, "a_binary", "cnn", "binary", ["no_sub", "sub"])
    write_tiny_checkpoint(checkpoint_dir, "b_model_i_cnn", "cnn", "model_i", model_i)
    write_tiny_checkpoint(checkpoint_dir, "model_i_gcnn", "gcnn", "model_i", model_i)  # the default model
    at = app_test("views/compare.py")
    no_exception(at)
    assert at.selectbox(key="compare_a_model").value.endswith("model_i_gcnn")
    assert at.selectbox(key="compare_b_model").value.endswith("b_model_i_cnn")  # not the binary one listed first
    at.selectbox(key="compare_b_model").set_value(f"ckpt:{checkpoint_dir / 'a_binary'}").run()
    no_exception(at)  # a 3-class and a 2-class model on one orbit figure
    assert any("different classes" in w.value for w in at.warning)


def test_explore_shows_a_checkpoint_lenses_of_the_simulation_it_was_trained_on(app_test, checkpoint_dir):
    write_tiny_checkpoint(checkpoint_dir, "binary_cnn", "cnn", "binary", ["no_sub", "sub"])
    at = app_test(explore_model=catalog.untrained_key("cnn", "C1"))  # an untrained model names no data
    assert at.selectbox(key="explore_sim_config").value == "model_i"
    at.selectbox(key="explore_sim_class_model_i").set_value(2).run()  # the third class of model_i
    at.selectbox(key="explore_model").set_value(f"ckpt:{checkpoint_dir / 'binary_cnn'}").run()
    no_exception(at)
    assert at.selectbox(key="explore_sim_config").value == "binary"
    assert at.selectbox(key="explore_sim_class_binary").value == 0  # binary's own class choice
    assert "binary / no_sub" in " ".join(image_captions(at))
    at.selectbox(key="explore_sim_config").set_value("model_ii").run()  # the user may still choose
    assert at.selectbox(key="explore_sim_config").value == "model_ii"


def test_evaluating_gives_metrics_and_opening_a_mistake_lands_in_explore(app_test):
    at = app_test("views/misclassified.py")
    at.button(key="mis_evaluate").click().run()
    no_exception(at)
    assert {m.label for m in at.metric} >= {"accuracy", "macro AUC", "test images"}
    report = at.session_state[state.EVALUATION]
    wrong = np.flatnonzero(report["probabilities"].argmax(1) != report["labels"])
    assert len(wrong), "an untrained model should get some of the test lenses wrong"
    first = [b for b in at.button if b.key and b.key.startswith("mis_open_")][0]
    first.click().run()
    no_exception(at)
    assert at.title[0].value == "Explore"
    assert any("test image #" in i.value.replace("\\", "") for i in at.info)  # Markdown-escaped text


def test_a_clicked_confusion_cell_filters_the_gallery(app_test):
    at = app_test("views/misclassified.py")
    at.button(key="mis_evaluate").click().run()
    report = at.session_state[state.EVALUATION]
    predicted = report["probabilities"].argmax(1)
    class_names = list(report["per_class_auc"])
    true_c, pred_c = int(report["labels"][0]), int(predicted[0])
    at.session_state[state.CONFUSION_CELL] = true_c * len(class_names) + pred_c
    at.run()
    no_exception(at)
    heading = f"**true `{class_names[true_c]}`, predicted `{class_names[pred_c]}`**"
    assert any(m.value.startswith(heading) for m in at.markdown)
    shown = [b.key for b in at.button if b.key and b.key.startswith("mis_open_")]
    in_cell = np.flatnonzero((report["labels"] == true_c) & (predicted == pred_c))
    assert sorted(int(k.rsplit("_", 1)[1]) for k in shown) == sorted(in_cell.tolist())[:12]


def diagram_error(at) -> float:
    """The error Learn prints under its commutative diagram, as plain text (not maths)."""
    return float(next(m.value for m in at.metric if m.label == "|L(g x) - ρ(g) L(x)| / |L(x)|"))


def test_the_learn_page_checks_the_commutative_diagram_live(app_test):
    at = app_test("views/learn.py")
    assert diagram_error(at) < 1e-5
    at.selectbox(key="learn_group").set_value("C8").run()
    at.selectbox(key="learn_element").set_value(1).run()  # 45 deg: resampled, no longer exact
    no_exception(at)
    assert diagram_error(at) > 1e-4


def test_the_flagship_is_offered_first_then_the_small_gcnn(checkpoint_dir):
    model_i = ["axion", "cdm", "no_sub"]
    for name in ("a_first_by_name", "model_i_gcnn", "model_i_flagship"):
        write_tiny_checkpoint(checkpoint_dir, name, "gcnn", "model_i", model_i)
    assert catalog.entries()[0].key.endswith("model_i_flagship")
    (checkpoint_dir / "model_i_flagship" / "model_card.json").unlink()
    assert catalog.entries()[0].key.endswith("model_i_gcnn")
