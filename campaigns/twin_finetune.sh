#!/usr/bin/env bash
# The plain twin's second cosine cycle, like the flagship's (issue 12): model_i_flagship_twin fine-tuned on lenses its
# campaign never drew (the stream from item 614,400 on), rendered with model_i's recipe vortex (100 point
# masses), same crop, scene rotations, validation and test streams. Peak lr 3e-4 (the first cycle: 1e-3).
# Run it again to continue where it stopped (each call trains for HOURS, default 2, then writes its state).
set -euo pipefail
cd "$(dirname "$0")/.."
.venv/bin/eqlens train --init-from checkpoints/model_i_flagship_twin --data model_i --crop 81 --image-size 81 \
  --fresh-data --stream-start 614400 --steps-per-epoch 400 --epochs 24 --batch-size 32 --lr 3e-4 \
  --schedule cosine --augment-mode scene --val-size 1500 --test-size 3000 --select-on val_accuracy \
  --recalibrate-bn 20 --device cpu --threads "${THREADS:-1}" --hours "${HOURS:-2}" \
  --out campaigns/twin_finetune --resume
