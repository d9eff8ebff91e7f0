"""Promise of the one eval_mode: a block runs in eval mode and the model leaves it in the mode it came in,
whatever the block does; the measures that use it (orbits, equivariance) leave a training model training."""

from __future__ import annotations

import pytest
import torch

from eqlens.analysis.equivariance import exact_errors
from eqlens.analysis.orbit import orbit_of_copies
from eqlens.models import create, eval_mode


def _model():
    torch.manual_seed(0)
    return create("cnn", num_classes=2, group="C4", image_size=17, widths=[4, 8])


@pytest.mark.parametrize("training", [True, False])
def test_eval_mode_restores_the_mode_the_model_came_in(training):
    model = _model().train(training)
    with eval_mode(model) as inside:
        assert inside is model and not model.training
        assert not any(m.training for m in model.modules())
    assert model.training is training
    assert all(m.training is training for m in model.modules())


def test_eval_mode_restores_the_mode_when_the_block_raises():
    model = _model().train()
    with pytest.raises(RuntimeError), model.eval_mode():  # the method of every registry model
        assert not model.training
        raise RuntimeError("boom")
    assert model.training


def test_orbits_and_equivariance_measures_leave_a_training_model_training():
    model = _model().train()
    orbit_of_copies(model, torch.rand(4, 1, 17, 17), [0.0, 90.0, 180.0, 270.0])
    assert model.training
    exact_errors(model, torch.rand(2, 1, 17, 17), "C4")
    assert model.training


def test_attributions_leave_a_training_model_training():
    from eqlens.analysis.attribution import attribute

    model = _model().train()
    attribute(model, torch.rand(1, 1, 17, 17), "saliency", target=0, mask=True)
    assert model.training
