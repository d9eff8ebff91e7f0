#!/usr/bin/env bash
# Issue 12, "the input the physics needs": the flagship gcnn on fresh Model I lenses for the same time
# (MINUTES, default 30, one thread each) on three inputs: the whole 150 px frame resized to 65 px, the
# native central 81 px crop, the whole frame resized to 129 px. The three run AT THE SAME TIME, so they
# share whatever else loads the machine equally (a wall-clock budget is only fair that way). Constant lr
# (no schedule to finish inside the budget); the best epoch on validation is tested on 3000 held-out lenses.
set -euo pipefail
cd "$(dirname "$0")/.."
common=(--model gcnn --group C4 --data model_i --model-kwargs '{"widths": [8, 16, 32, 48], "lift_stride": 2}'
  --fresh-data --steps-per-epoch 100 --epochs 1000 --batch-size 32 --lr 1e-3 --schedule constant
  --augment-mode scene --val-size 1500 --test-size 3000 --robustness-size 0 --device cpu
  --threads "${THREADS:-1}" --minutes "${MINUTES:-30}")
.venv/bin/eqlens train "${common[@]}" --image-size 65 --out campaigns/inputs/resized_65 --resume &
.venv/bin/eqlens train "${common[@]}" --crop 81 --image-size 81 --out campaigns/inputs/crop_81 --resume &
.venv/bin/eqlens train "${common[@]}" --image-size 129 --out campaigns/inputs/resized_129 --resume &
wait
