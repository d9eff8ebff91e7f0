#!/usr/bin/env bash
# The flagship taught resampled pictures too (issue 12): model_i_flagship's weights fine-tuned with
# --augment-mode mixed (each lens rendered with its scene turned, half of them then resampled by another
# uniform angle), so that the slider's bilinear turns of an uploaded image (worst angle 0.33 for the
# scene-trained flagship) stop reading as another lens. Lenses no earlier flagship run drew (stream items
# from 1,228,800 on: flagship_dense used 921,600-1,228,799), peak lr 3e-4, cosine over 12 x 400 steps.
# Run it again to continue where it stopped (each call trains for HOURS, default 2, then writes its state).
set -euo pipefail
cd "$(dirname "$0")/.."
.venv/bin/eqlens train --init-from checkpoints/model_i_flagship --data model_i --crop 81 --image-size 81 \
  --fresh-data --stream-start 1228800 --steps-per-epoch 400 --epochs 12 --batch-size 32 --lr 3e-4 \
  --schedule cosine --augment-mode mixed --val-size 1500 --test-size 3000 --select-on val_accuracy \
  --recalibrate-bn 20 --device cpu --threads "${THREADS:-1}" --hours "${HOURS:-2}" \
  --out campaigns/flagship_mixed --resume
