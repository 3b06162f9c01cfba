# mer-toolkit: `make demo` (synthetic data -> shards -> trained LightmanNet) and `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
DEMO   ?= demo
STAMP  := $(VENV)/.installed

.PHONY: install demo test test-fast bench docs clean-demo

install: $(STAMP)

# torch first, pinned to the CPU wheel: an unpinned torch would pull a multi-GB CUDA build.
# Users with a GPU install their CUDA torch before `pip install -e .` (the package accepts a range).
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet torch==2.13.0
	$(BIN)/python -m pip install --quiet -e ".[test]"
	$(BIN)/python -c "import cv2; assert hasattr(cv2.optflow, 'DualTVL1OpticalFlow_create'), 'opencv-contrib-python was overwritten'"
	touch $@

demo: install
	@test -f $(DEMO)/raw/casme2/synth_truth.json || $(BIN)/mer-prep synth casme2 $(DEMO)/raw/casme2
	$(BIN)/mer-prep casme2 $(DEMO)/raw/casme2 $(DEMO)/shards/casme2 --shard-size 16
	@test -f $(DEMO)/raw/ckplus/synth_truth.json || $(BIN)/mer-prep synth ckplus $(DEMO)/raw/ckplus
	$(BIN)/mer-prep ckplus $(DEMO)/raw/ckplus $(DEMO)/shards/ckplus
	$(BIN)/mer-prep inspect $(DEMO)/shards/casme2 -o $(DEMO)/contact_sheet.png
	$(BIN)/mer-train --shards $(DEMO)/shards --config configs/cpu.yaml --out $(DEMO)/runs/lightman
	@echo
	@echo "raw synthetic trees:  $(DEMO)/raw/{casme2,ckplus}  (ground truth in synth_truth.json)"
	@echo "shards:               $(DEMO)/shards/{casme2,ckplus}  (mer-shards/1, see docs/shard-format.md)"
	@echo "contact sheet:        $(DEMO)/contact_sheet.png"
	@echo "trained run:          $(DEMO)/runs/lightman  (metrics.json, predictions.csv, confusion.png)"

test: install
	$(BIN)/python -m pytest -q -ra

test-fast: install
	$(BIN)/python -m pytest -q -ra -m "not slow"

bench: install
	$(BIN)/python benchmarks/bench_prep.py
	$(BIN)/python benchmarks/bench_train.py

# docs/cli.md (the commands' --help) and docs/api.md (the modules' __all__ and docstrings) are generated;
# tests/test_docs.py fails when either is stale: run `make docs` and commit the result.
docs: install
	$(BIN)/python docs/generate_cli.py
	$(BIN)/python docs/generate_api.py

clean-demo:
	rm -rf $(DEMO)
