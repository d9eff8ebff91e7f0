#!/usr/bin/env bash
# The flagship with its lifting layer at native resolution (issue 12): model_i_flagship's weights, fine-tuned
# with lift_stride 1 (the same 82,075 parameters; the 5x5 lifting kernel now reads every pixel of the 81 px crop
# and a centred 3x3 max-pool halves the plane, where stride 2 sampled every other pixel). Lenses no earlier
# flagship run drew (stream items from 921,600 on: the first cycle used 0-614,399, flagship_finetune
# 614,400-921,599), model_i's recipe vortex, peak lr 3e-4 cosine, 24 x 400 steps; validation and test as always.
# Run it again to continue where it stopped (each call trains for HOURS, default 2, then writes its state).
set -euo pipefail
cd "$(dirname "$0")/.."
.venv/bin/eqlens train --init-from checkpoints/model_i_flagship --model-kwargs '{"lift_stride": 1}' \
  --data model_i --crop 81 --image-size 81 \
  --fresh-data --stream-start 921600 --steps-per-epoch 400 --epochs 24 --batch-size 32 --lr 3e-4 \
  --schedule cosine --augment-mode scene --val-size 1500 --test-size 3000 --select-on val_accuracy \
  --recalibrate-bn 20 --device cpu --threads "${THREADS:-1}" --hours "${HOURS:-2}" \
  --out campaigns/flagship_dense --resume
