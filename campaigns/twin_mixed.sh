#!/usr/bin/env bash
# The plain twin's mixed-augmentation cycle (issue 12), so that Compare's pair has had the same training
# again: checkpoints/model_i_flagship_twin (cnn, 79k, 48 x 400 steps with scene rotations) fine-tuned with
# exactly campaigns/flagship_mixed.sh's recipe (turned renderings, half also resampled; the same 153,600
# lenses from stream item 1,228,800 on; Adam 3e-4 cosine over 12 x 400 steps of 32).
# Run it again to continue where it stopped (each call trains for HOURS, default 2, then writes its state).
set -euo pipefail
cd "$(dirname "$0")/.."
.venv/bin/eqlens train --init-from checkpoints/model_i_flagship_twin --data model_i --crop 81 --image-size 81 \
  --fresh-data --stream-start 1228800 --steps-per-epoch 400 --epochs 12 --batch-size 32 --lr 3e-4 \
  --schedule cosine --augment-mode mixed --val-size 1500 --test-size 3000 --select-on val_accuracy \
  --recalibrate-bn 20 --device cpu --threads "${THREADS:-1}" --hours "${HOURS:-2}" \
  --out campaigns/twin_mixed --resume
