#!/usr/bin/env bash
# The binary task (no_sub / sub, sub = CDM subhalos as in Model I) at the flagship's input (issue 12, goal
# >= 98.5 % on a held-out split of 3000 lenses). The shipped flagship (gcnn C4, 82k) fine-tuned: its 26
# feature tensors copied, its 3-class head re-initialised for 2 classes. Fresh binary lenses from stream item
# 1,382,400 on (past every Model I stream a flagship run drew), native 81 px crop, mixed augmentation
# (turned renderings, half also resampled), Adam 3e-4 cosine over 8 x 400 steps of 32 (102,400 lenses).
# Run it again to continue where it stopped (each call trains for HOURS, default 2, then writes its state).
set -euo pipefail
cd "$(dirname "$0")/.."
.venv/bin/eqlens train --init-from checkpoints/model_i_flagship --data binary --crop 81 --image-size 81 \
  --fresh-data --stream-start 1382400 --steps-per-epoch 400 --epochs 8 --batch-size 32 --lr 3e-4 \
  --schedule cosine --augment-mode mixed --val-size 1500 --test-size 3000 --select-on val_accuracy \
  --recalibrate-bn 20 --device cpu --threads "${THREADS:-1}" --hours "${HOURS:-2}" \
  --out campaigns/binary --resume
