"""Issue 13, items 3, 5 and 10: a checkpoint's card is untrusted input. Its types and ranges are checked in
one place (ModelCard.from_json) before anything is built, sizes are capped, and weights of the wrong
dtype or holding NaN are neither loaded nor written."""

from __future__ import annotations

import copy

import pytest
import torch

from eqlens import checkpoint as ck
from eqlens.errors import CheckpointError
from eqlens.models import create
from tests.training.conftest import TINY_CNN


def _model():
    torch.manual_seed(0)
    return create("cnn", num_classes=3, group="C4", image_size=24, **TINY_CNN)


def _good():
    model = _model()
    card = ck.make_card(model, class_names=["axion", "cdm", "no_sub"], group="C4", data={"spec": "model_i"},
                        training={"complete": True}, input_spec={"image_size": 24, "circular_mask": True})
    return ck.eval_state_dict(model), card


def _upload(mutate=None, tensors=None):
    """The bytes of a single-file checkpoint whose card ``mutate(card)`` edited (as a hostile upload would)."""
    good_tensors, card = _good()
    card = copy.deepcopy(card)
    if mutate is not None:
        mutate(card)
    return ck.encode_weights(good_tensors if tensors is None else tensors, card)


def test_an_intact_upload_loads():
    model, card = ck.load_checkpoint(_upload())
    assert card.input.image_size == 24 and card.input.circular_mask is True


def _set(path, value):
    def mutate(card):
        target = card
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = value
    return mutate


@pytest.mark.parametrize("path, value, says", [
    (("input", "image_size"), 800, "reads cards up to 512 px"),
    (("input", "image_size"), 10**9, "input image_size"),
    (("input", "image_size"), 600, "512"),
    (("model", "build_config", "image_size"), 10**9, "image_size must be an integer"),
    (("model", "build_config", "image_size"), 800, "image_size must be an integer"),
    (("input", "crop"), 10**9, "input crop"),
])
def test_an_oversized_input_is_refused_before_any_model_is_built(path, value, says, monkeypatch):
    built = []
    monkeypatch.setattr(ck, "build_model", lambda *a, **k: built.append(1))
    with pytest.raises(CheckpointError, match=says):
        ck.load_checkpoint(_upload(_set(path, value)))
    assert not built


@pytest.mark.parametrize("path, value, says", [
    (("input", "circular_mask"), "false", "circular_mask must be true or false"),
    (("input", "circular_mask"), 1, "circular_mask must be true or false"),
    (("input", "image_size"), "24", "input image_size"),
    (("input",), ["image_size", 24], "input record must be a mapping"),
    (("model", "build_config", "num_classes"), "three", "num_classes must be an integer"),
    (("model", "build_config", "num_classes"), 3.0, "num_classes must be an integer"),
    (("model", "build_config", "num_classes"), 10**7, "num_classes must be an integer"),
    (("model", "build_config", "group"), "C999999", "N must be between 1 and 64"),
    (("model", "build_config", "group"), ["C4"] * 3, "group must be a group name"),
    (("model", "build_config", "group"), ["C4"] * 999_999, "longer than"),
    (("group",), "C999999", "N must be between 1 and 64"),
    (("group",), list(range(999_999)), "group must be a group name"),
    (("model", "build_config", "widths"), list(range(10_000)), "longer than"),
    (("training",), "done", "training must be a mapping"),
    (("training", "complete"), "yes", "complete must be true or false"),
    (("history",), {"epoch": 1}, "history must be a list"),
    (("class_names",), ["c"] * 5000, "more than"),
    (("format_version",), True, "format_version"),
])
def test_card_fields_of_the_wrong_type_or_range_raise_checkpoint_error(path, value, says):
    with pytest.raises(CheckpointError, match=says):
        ck.load_checkpoint(_upload(_set(path, value)))


def test_a_card_without_input_falls_back_to_the_build_size_with_the_mask_training_always_used():
    model, card = ck.load_checkpoint(_upload(lambda c: c.pop("input")))
    assert card.input.image_size == 24 and card.input.crop is None
    assert card.input.circular_mask is True  # every card training wrote has the mask, on by default


def test_the_input_size_must_match_the_model_it_describes():
    with pytest.raises(CheckpointError, match="differs from the model"):
        ck.load_checkpoint(_upload(_set(("input", "image_size"), 33)))


def test_deeply_nested_card_json_is_a_checkpoint_error_not_a_recursion_error():
    tensors, _ = _good()
    from safetensors.torch import save

    data = save(tensors, metadata={ck.CARD_METADATA_KEY: "[" * 100_000 + "]" * 100_000})
    with pytest.raises(CheckpointError):
        ck.load_checkpoint(data)


def test_int64_weights_are_refused_not_rounded_into_a_uniform_model():
    tensors, _ = _good()
    as_int = {k: (v * 1000).to(torch.int64) if v.is_floating_point() else v for k, v in tensors.items()}
    with pytest.raises(CheckpointError, match="is int64, the model needs float32"):
        ck.load_checkpoint(_upload(tensors=as_int))


def test_weights_holding_nan_are_never_written(tmp_path):
    model = _model()
    _, card = _good()
    with torch.no_grad():
        next(model.parameters()).view(-1)[0] = float("nan")
    with pytest.raises(CheckpointError, match="NaN or inf"):
        ck.write_checkpoint(tmp_path / "out", model, card)
    assert not (tmp_path / "out").exists()
    running_var = next(b for n, b in model.named_buffers() if n.endswith("running_var"))
    with torch.no_grad():
        next(model.parameters()).view(-1)[0] = 0.0
        running_var[0] = float("inf")
    with pytest.raises(CheckpointError, match="running_var"):
        ck.write_checkpoint(tmp_path / "out", model, card)


def test_every_shipped_card_still_validates():
    from pathlib import Path

    root = Path(__file__).resolve().parents[2] / "checkpoints"
    cards = sorted(root.glob("*/" + ck.CARD_FILE))
    assert cards
    for path in cards:
        import json

        card = ck.validate_card(json.loads(path.read_text()), str(path))
        assert 1 <= card["input"]["image_size"] <= ck.MAX_CARD_IMAGE_SIZE


def test_a_pickle_with_code_is_refused_without_repeating_torchs_advice_to_run_it():
    import io
    import pickle

    from eqlens.checkpoint import decode_weights
    from eqlens.errors import CheckpointError

    class Payload:
        def __reduce__(self):
            return (print, ("this must never run",))

    buffer = io.BytesIO()
    pickle.dump({"w": Payload()}, buffer)
    with pytest.raises(CheckpointError) as caught:
        decode_weights(buffer.getvalue(), "evil.pt")
    assert "weights_only" not in str(caught.value) and "refusing a pickle" in str(caught.value)
