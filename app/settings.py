"""App-wide settings read once from the environment (no st.* here).

``EQLENS_APP_TINY=1`` (the tests) shrinks everything: 33-px untrained models, few test lenses,
few orbit angles, a training run of a few steps. ``EQLENS_CHECKPOINT_DIR`` points at the
checkpoints to offer (default ``checkpoints/`` beside ``app/``).
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
TINY = os.environ.get("EQLENS_APP_TINY") == "1"
CHECKPOINT_DIR = Path(os.environ.get("EQLENS_CHECKPOINT_DIR", ROOT / "checkpoints"))
# offered first when present: a 3-class model_i checkpoint matches the default simulated lens
DEFAULT_CHECKPOINT = "model_i_gcnn"

# Image side of untrained models (checkpoints carry their own); odd so 90-deg rotations are exact.
UNTRAINED_IMAGE_SIZE = 33 if TINY else int(os.environ.get("EQLENS_APP_IMAGE_SIZE", 65))
ORBIT_STEPS = 24 if TINY else 72  # every 15 / 5 deg, both hold every multiple of 45 deg
EVAL_IMAGES = 6 if TINY else 300
IG_STEPS = 8 if TINY else 32
DEVICE = "cuda" if torch.cuda.is_available() else "cpu"
MAX_UPLOAD_PIXELS = 2048 * 2048


def device() -> torch.device:
    return torch.device(DEVICE)
