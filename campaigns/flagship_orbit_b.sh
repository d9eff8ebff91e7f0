#!/usr/bin/env bash
# flagship_orbit.sh at twice the rate (2e-4, cosine over 14 x 400 steps, lenses from --stream-start 2700000),
# run beside it on the second core (issue 12, session 11). Otherwise the same:
# the ring flagship trained as it is used with orbit averaging: the shipped ring flagship
# (gcnn C4, radial_bins 6) with --model-kwargs orbit_turns 4, so every training forward averages the class
# probabilities over the picture turned by 0, 22.5, 45 and 67.5 deg (frame averaging over C16; no new
# parameters, 4x the cost of a step). Fine-tuned on lenses no earlier run drew (--stream-start 2700000),
# Adam (here 2e-4 over 14 epochs), mixed augmentation. Selected on 3000 validation lenses (items
# 0-2999); candidates are compared on validation items 3000-7499, which no run selected on.
# Why: averaging the shipped flagship's probabilities over those turns, untrained, gave +0.3 points on
# validation items 1500-7499 (0.9475 -> 0.9507); training through the average may let the model use it.
# Run it again to continue where it stopped (each call trains for HOURS, default 2, then writes its state).
set -euo pipefail
cd "$(dirname "$0")/.."
.venv/bin/eqlens train --init-from checkpoints/model_i_flagship --model-kwargs '{"radial_bins": 6, "orbit_turns": 4}' \
  --data model_i --crop 81 --image-size 81 \
  --fresh-data --stream-start 2700000 --steps-per-epoch 400 --epochs 14 --batch-size 32 --lr 2e-4 \
  --schedule cosine --augment-mode mixed --val-size 3000 --test-size 3000 --select-on val_accuracy \
  --recalibrate-bn 20 --device cpu --threads "${THREADS:-1}" --hours "${HOURS:-2}" \
  --out campaigns/flagship_orbit_b --resume
