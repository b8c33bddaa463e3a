#!/usr/bin/env bash
# The GPU check (benchmarks/gpu_check.py): trains bilstm and the transformer two epochs on the GPU,
# checks CPU and GPU agree on test F1 within half a point, tags 50,000 sentences, prints throughput
# and memory. 4 min 34 s on an H200 at e9cc09f (3 min 46 s at 12528c1; 4 min 24 s on an H100 before
# the bilstm trained under torchrun in bf16); the three scorings of each model run at once.
# Arguments go to gpu_check.py (--data, --arch, --work).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -f data/manifest.json ] && [[ " $* " != *" --data "* ]]; then
    python -m adelabel prepare --out data --quiet
fi
exec python benchmarks/gpu_check.py "$@"
