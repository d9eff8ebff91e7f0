#!/usr/bin/env bash
# The plain twin's third cycle (issue 12, session 10): the shipped twin (after twin_cnn and twin_mixed)
# fine-tuned on the same 307,200 lenses as the flagship's ring cycle (flagship_rings.sh: stream item 1,800,000
# on, mixed augmentation, Adam from 3e-4, cosine over 24 x 400 steps), so that Compare's pair has had the same
# three cycles, lenses and augmentation. A plain cnn has no rings to add: only the training is matched.
# Run it again to continue where it stopped (each call trains for HOURS, default 2, then writes its state).
set -euo pipefail
cd "$(dirname "$0")/.."
.venv/bin/eqlens train --init-from checkpoints/model_i_flagship_twin --data model_i --crop 81 --image-size 81 \
  --fresh-data --stream-start 1800000 --steps-per-epoch 400 --epochs 24 --batch-size 32 --lr 3e-4 \
  --schedule cosine --augment-mode mixed --val-size 1500 --test-size 3000 --select-on val_accuracy \
  --recalibrate-bn 20 --device cpu --threads "${THREADS:-1}" --hours "${HOURS:-2}" \
  --out campaigns/twin_third --resume
