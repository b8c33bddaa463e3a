# The two commands the README promises: `make demo` (set up adelabel alone, tag with the ready tagger,
# then prepare/train/tag a toy on the sample corpus shipped in corpora/sample) and `make test` (set up
# with the test extras, then run the test suite).
PYTHON ?= python3

.PHONY: setup-core setup demo test

setup-core:
	$(PYTHON) -m pip install -q torch==2.13.0
	$(PYTHON) -m pip install -q -e .

setup: setup-core
	$(PYTHON) -m pip install -q -e ".[test,transformer,tune]"

demo: setup-core
	@echo "== 1. The ready tagger shipped in the package, on sentences we wrote (corpora/sample/example.txt):"
	$(PYTHON) -m adelabel tag corpora/sample/example.txt --model adelabel/pretrained/ade-bilstm --quiet | $(PYTHON) -c "import json, sys; [print(json.dumps({k: r[k] for k in ('text', 'entities', 'relations', 'ade')})[:400]) for r in map(json.loads, sys.stdin)]"
	@echo "== 2. The commands that made it, on a toy corpus (corpora/sample, 725 training sentences; about half a minute)."
	@echo "==    A toy: trained on so little, its tags are poor. Train on the real corpus for a useful model."
	$(PYTHON) -m adelabel prepare --corpus corpora/sample --out data-sample --quiet
	$(PYTHON) -m adelabel train --arch bilstm --data data-sample --out models/sample-bilstm \
		--epochs 12 --set train.batch_size=16 --set train.lr=0.005 --set model.hidden_size=64
	$(PYTHON) -m adelabel evaluate --model models/sample-bilstm --data data-sample
	$(PYTHON) -m adelabel tag corpora/sample/example.txt --model models/sample-bilstm --quiet | head -3

test: setup
	@echo "== the test suite: about 6 minutes on 2 cores (it trains small models and starts Ray); needs ../shared/corpora/ade-v2"
	$(PYTHON) -m pytest -q
