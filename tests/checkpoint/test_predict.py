"""Promises of the one predict: raw images are prepared as the card says and decoded by it, a dataset gets
only the card's mask, batching changes nothing, progress is reported per batch, and the model's mode is kept."""

from __future__ import annotations

import torch
from torch.utils.data import TensorDataset

from eqlens import checkpoint as ck
from eqlens.checkpoint import ModelCard, predict
from eqlens.data.transforms import apply_circular_mask
from eqlens.models import create


def _model_and_card(mask: bool = True, crop: int | None = None):
    torch.manual_seed(0)
    model = create("cnn", num_classes=3, group="C4", image_size=24, widths=[4, 8])
    card = ck.make_card(model, class_names=["axion", "cdm", "no_sub"], group="C4", data={}, training={},
                        input_spec={"image_size": 24, "crop": crop, "circular_mask": mask})
    return model, ModelCard.from_json(card)


def test_raw_images_are_prepared_and_decoded_by_the_card():
    model, card = _model_and_card(crop=40)
    raw = torch.rand(5, 60, 60) * 50
    with torch.no_grad():
        expected = model.eval()(card.prepare(raw)).softmax(-1)
    result = predict(model, card, raw)
    torch.testing.assert_close(result.values, expected)
    assert result.labels is None and result.outputs.shape == (5, 3)
    torch.testing.assert_close(result.values.sum(-1), torch.ones(5))


def test_batching_changes_nothing_and_progress_counts_every_image():
    model, card = _model_and_card()
    raw = torch.rand(7, 24, 24)
    seen = []
    batched = predict(model, card, raw, batch_size=3, progress=lambda done, total: seen.append((done, total)))
    whole = predict(model, card, raw, batch_size=64)
    torch.testing.assert_close(batched.values, whole.values)
    assert seen == [(3, 7), (6, 7), (7, 7)]


def test_a_dataset_gets_the_cards_mask_and_comes_back_with_labels_in_order():
    model, card = _model_and_card(mask=True)
    x, y = torch.rand(5, 1, 24, 24), torch.tensor([0, 2, 1, 1, 0])
    seen = []
    result = predict(model, card, TensorDataset(x, y), batch_size=2, progress=lambda d, t: seen.append((d, t)))
    with torch.no_grad():
        expected = model.eval()(apply_circular_mask(x)).softmax(-1)
    torch.testing.assert_close(result.values, expected)
    assert torch.equal(result.labels, y) and torch.equal(result.indices, torch.arange(5))
    assert seen[-1] == (5, 5) and len(seen) == 3
    unmasked = predict(model, card.replace(input=card.input.__class__(24, None, False)), TensorDataset(x, y))
    assert not torch.allclose(unmasked.values, result.values)


def test_predict_leaves_a_training_model_training():
    model, card = _model_and_card()
    model.train()
    predict(model, card, torch.rand(2, 24, 24))
    assert model.training
    predict(model, card, TensorDataset(torch.rand(2, 1, 24, 24), torch.zeros(2, dtype=torch.long)))
    assert model.training
