"""Explore opens a model on the view it was trained for: a checkpoint that learnt its rotations from
turned renderings only (scene augmentation, as the plain twin) starts on the turned sky, one trained on
resampled pictures on the picture; the user's choice holds until the model changes."""

from __future__ import annotations

from .conftest import no_exception

MODEL_I = ["axion", "cdm", "no_sub"]


def _checkpoint(folder, name: str, augment_mode: str) -> None:
    from eqlens.checkpoint import make_card, write_checkpoint
    from eqlens.models import create

    net = create("gcnn", num_classes=3, group="C4", image_size=33)
    card = make_card(net, class_names=MODEL_I, group="C4", data={"kind": "simulated", "spec": "model_i"},
                     training={"config": {"augment": True, "augment_mode": augment_mode}},
                     input_spec={"image_size": 33})
    write_checkpoint(folder / name, net, card)


def test_a_scene_trained_model_opens_on_the_turned_sky_and_a_picture_trained_one_does_not(app_test, checkpoint_dir):
    _checkpoint(checkpoint_dir, "model_i_flagship", "scene")  # offered first
    _checkpoint(checkpoint_dir, "model_i_gcnn", "image")
    at = app_test("views/explore.py")
    no_exception(at)
    assert at.selectbox(key="explore_model").value.endswith("model_i_flagship")
    assert at.toggle(key="explore_sky").value is True
    at.toggle(key="explore_sky").set_value(False).run()  # the user's choice holds on the same model
    assert at.toggle(key="explore_sky").value is False
    at.selectbox(key="explore_model").set_value(f"ckpt:{checkpoint_dir / 'model_i_gcnn'}").run()
    no_exception(at)
    assert at.toggle(key="explore_sky").value is False
    at.selectbox(key="explore_model").set_value(f"ckpt:{checkpoint_dir / 'model_i_flagship'}").run()
    assert at.toggle(key="explore_sky").value is True
