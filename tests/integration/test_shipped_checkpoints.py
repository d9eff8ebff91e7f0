"""Every checkpoint shipped in checkpoints/ loads safely, is small, and does what its model card says."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from eqlens.evaluation.checkpoint import evaluate_checkpoint

SHIPPED = Path(__file__).resolve().parents[2] / "checkpoints"
FOLDERS = sorted(p for p in SHIPPED.iterdir() if (p / "model_card.json").exists())
N = 64  # the first N lenses of the checkpoint's own held-out test split


def test_the_app_has_checkpoints_to_start_with():
    names = {p.name for p in FOLDERS}
    assert {"model_i_gcnn", "model_i_cvt", "model_i_cnn", "model_i_eqcvt", "model_i_eqcvt_inv", "binary_gcnn",
            "model_i_flagship", "model_i_flagship_twin", "binary_flagship"} <= names


@pytest.mark.parametrize("folder", FOLDERS, ids=[p.name for p in FOLDERS])
def test_a_shipped_checkpoint_scores_on_its_test_lenses_what_its_card_says(folder):
    assert sum(f.stat().st_size for f in folder.rglob("*") if f.is_file()) < 10 * 2**20
    report = evaluate_checkpoint(folder, size=N, device="cpu", robustness_size=0)
    card_test = json.loads((folder / "model_card.json").read_text())["metrics"]["test"]
    chance = 1.0 / len(card_test["class_names"])
    assert report["n"] == N
    assert report["accuracy"] > chance + 0.1
    # A subset of the card's test split: agree within sampling noise (4 sigma of a binomial on N).
    sigma = math.sqrt(card_test["accuracy"] * (1 - card_test["accuracy"]) / N)
    assert abs(report["accuracy"] - card_test["accuracy"]) < 4 * sigma + 1e-9


def test_a_shipped_card_states_every_hyper_parameter_its_builder_takes():
    from eqlens.models import spec
    from eqlens.models.registry import builder_defaults

    for folder in FOLDERS:
        build = json.loads((folder / "model_card.json").read_text())["model"]["build_config"]
        missing = set(builder_defaults(spec(build["name"]).builder)) - set(build)
        assert not missing, (folder.name, missing)
    pinned = json.loads((SHIPPED / "model_i_gcnn" / "model_card.json").read_text())["model"]["build_config"]
    assert pinned == {"name": "gcnn", "variant": "gcnn_c4", "num_classes": 3, "group": "C4", "image_size": 65,
                      "widths": [16, 24, 32, 32],
                      "lift_kernel_size": 5, "kernel_size": 3, "hidden": 64, "group_pool": "max", "lift_stride": 1,
                      "radial_bins": 0, "orbit_turns": 1}


@pytest.mark.parametrize("folder", FOLDERS, ids=[p.name for p in FOLDERS])
def test_a_shipped_checkpoints_embedded_card_is_its_model_card_json(folder):
    """The card inside the safetensors header (what a lone .safetensors upload carries, and what
    load_checkpoint reads first) and model_card.json beside it say the same, field for field."""
    from eqlens.checkpoint.io import embedded_card

    embedded = embedded_card((folder / "model.safetensors").read_bytes(), folder.name)
    assert embedded == json.loads((folder / "model_card.json").read_text())
