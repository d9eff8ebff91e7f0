#!/usr/bin/env bash
# eqcvt (the seed's EqCvT: escnn C4 steerable convs in front of a CvT, 65k parameters) at the flagship's input
# (issue 12): native 81 px crop, fresh Model I lenses (model_i's recipe vortex), scene rotations, the same
# validation and test streams. The budget is the flagship's CPU time (about 3.7 one-thread hours), not its
# number of lenses: eqcvt trains at about 16 img/s on one core against the flagship's 89, so 16 x 400 steps
# of 32 (204,800 lenses), cosine from 1e-3. A campaign of several calls: run it again to continue.
set -euo pipefail
cd "$(dirname "$0")/.."
.venv/bin/eqlens train --model eqcvt --data model_i --crop 81 --image-size 81 \
  --fresh-data --steps-per-epoch 400 --epochs 16 --batch-size 32 --lr 1e-3 --schedule cosine \
  --augment-mode scene --val-size 1500 --test-size 3000 --select-on val_accuracy \
  --recalibrate-bn 20 --device cpu --threads "${THREADS:-1}" --hours "${HOURS:-2}" --out campaigns/eqcvt --resume
