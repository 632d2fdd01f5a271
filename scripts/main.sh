#!/usr/bin/env bash
# The main job: set up, train the MLP on the digits, and write its generated training step
# and its rendered graph to out/.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
mkdir -p out
.venv/bin/graphc train examples/mlp_digits.py --save out/mlp_digits_params.npz
.venv/bin/graphc emit examples/mlp_digits.py -o out/mlp_digits_step.py
.venv/bin/graphc render examples/mlp_digits.py -o out/mlp_digits.svg
echo "main job done: out/mlp_digits_step.py (generated code), out/mlp_digits.svg (graph),"
echo "               out/mlp_digits_params.npz (trained parameters)"
