"""App-wide settings read once from the environment (no st.* here).

``EQLENS_APP_TINY=1`` (the tests) shrinks everything: 33-px untrained models, few test lenses,
few orbit angles, a training run of a few steps. ``EQLENS_CHECKPOINT_DIR`` points at the shipped
checkpoints to offer (default ``checkpoints/`` beside ``app/``), ``EQLENS_RUNS_DIR`` at the runs the Train
page writes (default ``runs/app/``, git-ignored), offered beside them.

Untrusted input (see docs/security.md): folder fields accept only folders inside ``DATA_ROOTS``, the
project's ``data/`` plus any listed in ``EQLENS_DATA_ROOTS`` (separated by ``:``), and scan at
most ``FOLDER_SCAN_MAX_ENTRIES`` entries in ``FOLDER_SCAN_SECONDS``; uploaded images are decoded in a
child process limited to ``DECODE_MEMORY_MB`` MiB and ``DECODE_TIMEOUT_S`` seconds.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
TINY = os.environ.get("EQLENS_APP_TINY") == "1"
CHECKPOINT_DIR = Path(os.environ.get("EQLENS_CHECKPOINT_DIR", ROOT / "checkpoints"))
# Where the Train page writes its runs (git-ignored): the checkpoints folder holds only shipped models. Every
# page offers these runs beside the shipped checkpoints, marked as app runs.
RUNS_DIR = Path(os.environ.get("EQLENS_RUNS_DIR", ROOT / "runs" / "app"))
# offered first, in this order of preference, when present: the Model I flagship (docs/models.md), else the
# small gcnn; a 3-class model_i checkpoint matches the default simulated lens
DEFAULT_CHECKPOINTS = ("model_i_flagship", "model_i_gcnn")

# Image side of untrained models (checkpoints carry their own); odd so 90-deg rotations are exact.
UNTRAINED_IMAGE_SIZE = 33 if TINY else int(os.environ.get("EQLENS_APP_IMAGE_SIZE", 65))
ORBIT_STEPS = 24 if TINY else 72  # every 15 / 5 deg, both hold every multiple of 45 deg
EVAL_IMAGES = 6 if TINY else 300
IG_STEPS = 8 if TINY else 32
DEVICE = "cuda" if torch.cuda.is_available() else "cpu"
MAX_UPLOAD_PIXELS = 2048 * 2048
# The largest model input the app runs (checkpoints, uploads): the cards allow 512 px, but a CvT's
# attention grows with the fourth power of the side and a 512 px gcnn's orbit took 17 GB at once.
MAX_MODEL_IMAGE_SIZE = int(os.environ.get("EQLENS_APP_MAX_IMAGE_SIZE", 256))


def _data_roots() -> tuple[Path, ...]:
    extra = [p for p in os.environ.get("EQLENS_DATA_ROOTS", "").split(os.pathsep) if p.strip()]
    return tuple(dict.fromkeys(Path(p).resolve() for p in [ROOT / "data", *extra]))


DATA_ROOTS = _data_roots()
FOLDER_SCAN_MAX_ENTRIES = int(os.environ.get("EQLENS_FOLDER_SCAN_MAX_ENTRIES", 200_000))
FOLDER_SCAN_SECONDS = float(os.environ.get("EQLENS_FOLDER_SCAN_SECONDS", 20))
DECODE_MEMORY_MB = int(os.environ.get("EQLENS_DECODE_MEMORY_MB", 1024))
DECODE_TIMEOUT_S = float(os.environ.get("EQLENS_DECODE_TIMEOUT_S", 30))


def device() -> torch.device:
    return torch.device(DEVICE)


# Compare opens on the invariant flagship against its plain twin (the same data, a similar size): the
# first of these partners that is present, else a checkpoint trained on the same data (catalog.partner_index).
COMPARE_DEFAULT = "model_i_flagship"
COMPARE_PARTNERS = ("model_i_flagship_twin", "model_i_cnn")
CALIBRATION_BINS = 10  # Misclassified's reliability diagram
