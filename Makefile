# The two commands the README promises: `make demo` (set up, then prepare/train/tag on the sample corpus
# shipped in corpora/sample) and `make test` (set up, then run the test suite).
PYTHON ?= python3

.PHONY: setup demo test

setup:
	$(PYTHON) -m pip install -q torch==2.13.0
	$(PYTHON) -m pip install -q -e ".[test,transformer,tune]"

demo: setup
	$(PYTHON) cli.py prepare --corpus corpora/sample --out data/sample
	$(PYTHON) cli.py train --arch bilstm --data data/sample --out models/sample-bilstm \
		--epochs 25 --set train.batch_size=16 --set train.lr=0.005 --set model.hidden_size=64
	$(PYTHON) cli.py evaluate --model models/sample-bilstm --data data/sample
	$(PYTHON) cli.py tag corpora/sample/example.txt --model models/sample-bilstm

test: setup
	$(PYTHON) -m pytest -q
