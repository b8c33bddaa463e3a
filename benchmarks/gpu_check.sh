#!/usr/bin/env bash
# The GPU check (benchmarks/gpu_check.py): trains bilstm and the transformer two epochs on the GPU,
# checks CPU and GPU agree on test F1 within half a point, tags 50,000 sentences, prints throughput
# and memory. About 4 minutes on one H100/H200. Arguments go to gpu_check.py (--data, --arch, --work).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -f data/manifest.json ] && [[ " $* " != *" --data "* ]]; then
    python -m adelabel prepare --out data --quiet
fi
exec python benchmarks/gpu_check.py "$@"
