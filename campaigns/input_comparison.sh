#!/usr/bin/env bash
# Issue 12, "the input the physics needs": the flagship gcnn on the same fresh Model I lenses (EPOCHS x 100
# steps of 32, default 8 x 100 = 25,600 lenses, constant lr, one thread) on three inputs: the whole 150 px
# frame resized to 65 px, the native central 81 px crop, the whole frame resized to 129 px. Equal images,
# not equal wall time: on a shared machine the wall clock is not a fair budget; the CPU seconds each run
# used (user + sys) are printed by `time` beside it. The best epoch on validation (1500 lenses) is tested on
# 3000 held-out lenses.
set -euo pipefail
cd "$(dirname "$0")/.."
common=(--model gcnn --group C4 --data model_i --model-kwargs '{"widths": [8, 16, 32, 48], "lift_stride": 2}'
  --fresh-data --steps-per-epoch 100 --epochs "${EPOCHS:-8}" --batch-size 32 --lr 1e-3 --schedule constant
  --augment-mode scene --val-size 1500 --test-size 3000 --robustness-size 0 --recalibrate-bn 20 --device cpu
  --threads "${THREADS:-1}")
for input in "65 --image-size 65" "81 --crop 81 --image-size 81" "129 --image-size 129"; do
  set -- $input
  name=$([ "$1" = 81 ] && echo crop_81 || echo "resized_$1")
  shift
  echo "== $name"
  time .venv/bin/eqlens train "${common[@]}" "$@" --out "campaigns/inputs/$name" --resume
done
