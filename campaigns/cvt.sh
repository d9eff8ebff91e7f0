#!/usr/bin/env bash
# cvt (the Convolutional Vision Transformer baseline, 463k parameters) at the flagship's input and recipe
# (issue 12): native 81 px crop, fresh Model I lenses (model_i's recipe vortex), scene rotations, 48 x 400
# steps of 32, cosine from 1e-3, the same validation and test streams. About 1.6x slower per step than the
# flagship on one core: a campaign of several calls. Run it again to continue where it stopped.
set -euo pipefail
cd "$(dirname "$0")/.."
.venv/bin/eqlens train --model cvt --data model_i --crop 81 --image-size 81 \
  --fresh-data --steps-per-epoch 400 --epochs 48 --batch-size 32 --lr 1e-3 --schedule cosine \
  --augment-mode scene --val-size 1500 --test-size 3000 --select-on val_accuracy \
  --recalibrate-bn 20 --device cpu --threads "${THREADS:-1}" --hours "${HOURS:-2}" --out campaigns/cvt --resume
