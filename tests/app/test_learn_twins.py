"""Learn teaches with trained models: the lifting kernel is the flagship's own first kernel run by the
network's own LiftingConv, and "why a plain CNN is not invariant" compares the flagship with its plain
twin (both shipped, trained alike), falling back to untrained models only when they are not there."""

from __future__ import annotations

from .conftest import no_exception
from .test_pages import write_tiny_checkpoint

MODEL_I = ["axion", "cdm", "no_sub"]


def test_learn_compares_the_trained_twins_when_they_are_shipped(app_test, checkpoint_dir):
    write_tiny_checkpoint(checkpoint_dir, "model_i_flagship", "gcnn", "model_i", MODEL_I)
    write_tiny_checkpoint(checkpoint_dir, "model_i_flagship_twin", "cnn", "model_i", MODEL_I)
    at = app_test("views/learn.py")
    no_exception(at)
    labels = [m.label for m in at.metric]
    assert any(label.startswith("model_i_flagship_twin") for label in labels), labels
    assert any(label.startswith("model_i_flagship:") for label in labels), labels
    captions = " ".join(c.value for c in at.caption)
    assert "Trained on the same fresh Model I lenses" in captions
    assert "of the first layer of model_i_flagship (trained)" in captions  # the flagship's own kernel


def test_learn_says_so_when_only_untrained_models_are_there(app_test, checkpoint_dir):
    at = app_test("views/learn.py")
    no_exception(at)
    captions = " ".join(c.value for c in at.caption)
    assert "Untrained models" in captions
    assert "hand-made kernel" in captions
