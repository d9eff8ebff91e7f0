#!/usr/bin/env bash
# A C8 candidate for the flagship (issue 12): gcnn C8, widths 8-16-24-32 (94,827 parameters, under the 100k
# cap), the flagship's input (native 81 px crop, lift_stride 2) and validation/test streams, fresh Model I
# lenses (model_i's recipe vortex) with mixed augmentation (turned renderings, half also resampled), Adam 1e-3
# cosine over 32 x 400 steps of 32. Three runs of the C4 architecture stopped at test 0.943-0.948; C8 shares
# each kernel over twice the orientations. 2.4x slower per step than the C4 flagship on one core: a
# campaign of several sessions. Run it again to continue where it stopped.
set -euo pipefail
cd "$(dirname "$0")/.."
.venv/bin/eqlens train --model gcnn --group C8 --data model_i --crop 81 --image-size 81 \
  --model-kwargs '{"widths": [8, 16, 24, 32], "lift_stride": 2}' \
  --fresh-data --steps-per-epoch 400 --epochs 32 --batch-size 32 --lr 1e-3 --schedule cosine \
  --augment-mode mixed --val-size 1500 --test-size 3000 --select-on val_accuracy \
  --recalibrate-bn 20 --device cpu --threads "${THREADS:-1}" --hours "${HOURS:-2}" --out campaigns/flagship_c8 --resume
