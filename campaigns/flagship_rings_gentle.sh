#!/usr/bin/env bash
# flagship_rings.sh at a gentler rate (issue 12, session 10): the same ring-means start (the shipped flagship read
# as the same function with radial_bins 6), Adam from 1e-4 instead of 3e-4, cosine over 12 x 400 steps, on
# lenses neither run drew (--stream-start 2200000). At 3e-4 the first epochs knock validation from 0.950 to
# 0.921 and it climbs back to about 0.947; a frozen-backbone probe with a ring head reached 0.952, so a rate
# that keeps the backbone near where it stands may keep the head's gain.
# Run it again to continue where it stopped (each call trains for HOURS, default 2, then writes its state).
set -euo pipefail
cd "$(dirname "$0")/.."
.venv/bin/eqlens train --init-from checkpoints/model_i_flagship --model-kwargs '{"radial_bins": 6}' \
  --data model_i --crop 81 --image-size 81 \
  --fresh-data --stream-start 2200000 --steps-per-epoch 400 --epochs 12 --batch-size 32 --lr 1e-4 \
  --schedule cosine --augment-mode mixed --val-size 1500 --test-size 3000 --select-on val_accuracy \
  --recalibrate-bn 20 --device cpu --threads "${THREADS:-1}" --hours "${HOURS:-2}" \
  --out campaigns/flagship_rings_gentle --resume
