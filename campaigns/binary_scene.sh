#!/usr/bin/env bash
# The binary fine-tune's second stage (issue 12): campaigns/binary.sh's best checkpoint (mixed augmentation,
# best epoch 8: val 0.983, 23 of its 26 validation errors sub lenses called no_sub) trained on with scene
# rotations only, the renderings the validation and test lenses are (no bilinear resampling: the guess is
# that it blurs the faint marks of subhalos, biasing the model towards no_sub). Fresh binary lenses from
# stream item 1,484,800 on (after the 102,400 binary.sh drew), Adam 3e-4 cosine over 8 x 400 steps of 32.
# Run it again to continue where it stopped (each call trains for HOURS, default 2, then writes its state).
set -euo pipefail
cd "$(dirname "$0")/.."
.venv/bin/eqlens train --init-from campaigns/binary --data binary --crop 81 --image-size 81 \
  --fresh-data --stream-start 1484800 --steps-per-epoch 400 --epochs 8 --batch-size 32 --lr 3e-4 \
  --schedule cosine --augment-mode scene --val-size 1500 --test-size 3000 --select-on val_accuracy \
  --recalibrate-bn 20 --device cpu --threads "${THREADS:-1}" --hours "${HOURS:-2}" \
  --out campaigns/binary_scene --resume
