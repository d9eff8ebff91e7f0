#!/usr/bin/env bash
# The flagship with a ring-means head (issue 12, session 10): gcnn C4 whose head reads each channel's mean
# over 6 rings about the lens centre instead of one global mean (--model-kwargs radial_bins 6: 97,435
# parameters, still exactly invariant). Started from the shipped flagship as the same function
# (GroupCNN.adapt_source spreads the global-mean weights over the rings by their pixel shares), then
# fine-tuned on lenses no earlier run drew (--stream-start 1800000) with the flagship's mixed augmentation,
# Adam from 3e-4, cosine over 24 x 400 steps. Why: the error anatomy (docs/benchmarks.md) puts the errors on
# CDM lenses whose subhalos sit inside the Einstein ring rather than on it, which a global mean cannot tell
# apart; frozen-backbone probes gave a ring head +0.4 points of validation over a global one.
# Run it again to continue where it stopped (each call trains for HOURS, default 2, then writes its state).
set -euo pipefail
cd "$(dirname "$0")/.."
.venv/bin/eqlens train --init-from checkpoints/model_i_flagship --model-kwargs '{"radial_bins": 6}' \
  --data model_i --crop 81 --image-size 81 \
  --fresh-data --stream-start 1800000 --steps-per-epoch 400 --epochs 24 --batch-size 32 --lr 3e-4 \
  --schedule cosine --augment-mode mixed --val-size 1500 --test-size 3000 --select-on val_accuracy \
  --recalibrate-bn 20 --device cpu --threads "${THREADS:-1}" --hours "${HOURS:-2}" \
  --out campaigns/flagship_rings --resume
