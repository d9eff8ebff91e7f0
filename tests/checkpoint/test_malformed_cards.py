"""Issue 24, item 4: every malformed card is a CheckpointError with its reason, whatever it holds (a
5000-digit integer, which Python's JSON reader refuses with a bare ValueError, or any other value in any
field), read from a folder's model_card.json, a side card beside a pickle, or a safetensors header."""

from __future__ import annotations

import copy
import json

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from eqlens import checkpoint as ck
from eqlens.errors import CheckpointError
from eqlens.models import create

HUGE = "9" * 5000  # an integer literal Python's json.loads refuses (over 4300 digits)


def _model():
    torch.manual_seed(0)
    return create("cnn", num_classes=3, image_size=24, widths=[4, 8])


def _card() -> dict:
    return ck.make_card(_model(), class_names=["axion", "cdm", "no_sub"], group="C4", data={"spec": "model_i"},
                        training={"complete": True}, input_spec={"image_size": 24})


def _with_huge_integer(card: dict) -> str:
    """The card's JSON text with a 5000-digit integer as its test metric."""
    return json.dumps({**card, "metrics": {"n": "HUGE"}}).replace('"HUGE"', HUGE)


def test_a_side_card_holding_a_5000_digit_integer_is_a_checkpoint_error(tmp_path):
    ck.write_checkpoint(tmp_path, _model(), _card())
    (tmp_path / ck.CARD_FILE).write_text(_with_huge_integer(_card()))
    with pytest.raises(CheckpointError, match="corrupt model card.*digits"):
        ck.read_card(tmp_path)


def test_a_side_card_beside_plain_tensors_holding_such_an_integer_is_a_checkpoint_error(tmp_path):
    torch.save(ck.eval_state_dict(_model()), tmp_path / ck.WEIGHTS_FILE)  # a pure-tensor .pt: the side card rules
    (tmp_path / ck.CARD_FILE).write_text(_with_huge_integer(_card()))
    with pytest.raises(CheckpointError, match="corrupt model card"):
        ck.load_checkpoint(tmp_path)


def test_an_embedded_card_holding_such_an_integer_is_a_checkpoint_error():
    model = _model()
    data = ck.encode_weights(ck.eval_state_dict(model), _card())
    header_len = int.from_bytes(data[:8], "little")
    header = json.loads(data[8:8 + header_len])
    header["__metadata__"][ck.CARD_METADATA_KEY] = _with_huge_integer(_card())
    text = json.dumps(header).encode()
    forged = len(text).to_bytes(8, "little") + text + data[8 + header_len:]
    with pytest.raises(CheckpointError, match="unreadable embedded model card"):
        ck.load_checkpoint(forged)


def test_a_safetensors_header_holding_such_an_integer_is_a_checkpoint_error():
    text = ('{"__metadata__": {}, "w": {"dtype": "F32", "shape": [' + HUGE + '], "data_offsets": [0, 4]}}').encode()
    with pytest.raises(CheckpointError, match="unreadable safetensors header"):
        ck.load_checkpoint(len(text).to_bytes(8, "little") + text + b"\0" * 4)


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=6,
)


def _paths(value, prefix=()):
    """Every key path of a JSON object (a list's items by index)."""
    yield prefix
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for key, child in items:
        yield from _paths(child, (*prefix, key))


PATHS = [p for p in _paths(_card()) if p]


@given(path=st.sampled_from(PATHS), value=_JSON)
def test_any_value_in_any_field_of_a_card_reads_or_is_a_checkpoint_error(path, value):
    card = copy.deepcopy(_card())
    target = card
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    try:
        ck.ModelCard.from_json(card, "fuzzed card")
    except CheckpointError as err:
        assert str(err).startswith("fuzzed card"), str(err)
