#!/usr/bin/env bash
# The flagship campaign (issue 12): gcnn C4 on fresh Model I lenses, native 81 px crop, ~82k parameters.
# Run it again to continue where it stopped (each call trains for HOURS, default 2, then writes its state).
set -euo pipefail
cd "$(dirname "$0")/.."
.venv/bin/eqlens train --model gcnn --group C4 --data model_i --crop 81 --image-size 81 \
  --model-kwargs '{"widths": [8, 16, 32, 48], "lift_stride": 2}' \
  --fresh-data --steps-per-epoch 400 --epochs 48 --batch-size 32 --lr 1e-3 --schedule cosine \
  --augment-mode scene --val-size 1500 --test-size 3000 --select-on val_accuracy \
  --recalibrate-bn 20 --device cpu --threads "${THREADS:-1}" --hours "${HOURS:-2}" --out campaigns/flagship_gcnn --resume
