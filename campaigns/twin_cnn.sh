#!/usr/bin/env bash
# The flagship's plain twin (issue 12): the plain cnn (79k parameters, no symmetry built in) on the same
# fresh Model I stream, crop, schedule and number of images as campaigns/flagship_gcnn.sh, so that the
# app's Compare and Learn pages compare like with like. Run it again to continue where it stopped.
set -euo pipefail
cd "$(dirname "$0")/.."
.venv/bin/eqlens train --model cnn --data model_i --crop 81 --image-size 81 \
  --fresh-data --steps-per-epoch 400 --epochs 48 --batch-size 32 --lr 1e-3 --schedule cosine \
  --augment-mode scene --val-size 1500 --test-size 3000 --select-on val_accuracy \
  --recalibrate-bn 20 --device cpu --threads "${THREADS:-1}" --hours "${HOURS:-2}" --out campaigns/twin_cnn --resume
