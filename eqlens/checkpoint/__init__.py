"""Checkpoints: the model card (:mod:`.card`), the files and their safe readers (:mod:`.io`), what a
checkpoint says about images (:mod:`.predict`) and starting a model from another's weights (:mod:`.transfer`).

    from eqlens.checkpoint import load_checkpoint, predict
    model, card = load_checkpoint("checkpoints/model_i_gcnn")      # card: a ModelCard
    probabilities = predict(model, card, images).values              # batched, decoded by the card
"""

from __future__ import annotations

from .card import (
    FORMAT,
    FORMAT_VERSION,
    MAX_BUILD_CONFIG_CHARS,
    MAX_CARD_IMAGE_SIZE,
    MAX_CLASSES,
    ModelCard,
    make_card,
    validate_card,
)
from .io import (
    CARD_FILE,
    CARD_METADATA_KEY,
    LAST_DIR,
    STATE_FILE,
    WEIGHTS_FILE,
    build_model,
    capture_rng_state,
    decode_weights,
    embedded_card,
    encode_weights,
    eval_state_dict,
    find_last,
    first_non_finite,
    load_checkpoint,
    load_state,
    load_weights_into,
    read_card,
    read_checkpoint,
    remove_stale_temporaries,
    restore_rng_state,
    write_checkpoint,
    write_last,
)
from .predict import Predictions, predict

__all__ = [
    "CARD_FILE", "CARD_METADATA_KEY", "FORMAT", "FORMAT_VERSION", "LAST_DIR", "MAX_BUILD_CONFIG_CHARS",
    "MAX_CARD_IMAGE_SIZE", "MAX_CLASSES", "STATE_FILE", "WEIGHTS_FILE", "ModelCard", "Predictions", "build_model",
    "capture_rng_state", "decode_weights", "embedded_card", "encode_weights", "eval_state_dict", "find_last",
    "first_non_finite", "load_checkpoint", "load_state", "load_weights_into", "make_card", "predict",
    "read_card", "read_checkpoint", "remove_stale_temporaries", "restore_rng_state", "validate_card",
    "write_checkpoint", "write_last",
]
