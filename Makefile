# Two commands on a fresh machine: `make demo` and `make test`. Each sets up .venv itself.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEMO_OBJECTS ?= 3000
DEMO_OUT ?= demo-output

.PHONY: demo test lint bench clean

$(STAMP): pyproject.toml constraints.txt
	$(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	# torch first, pinned: the CPU build lies on disk here; a plain "torch" could pull multi-GB CUDA wheels
	$(BIN)/pip install --quiet "torch==2.13.0"
	$(BIN)/pip install --quiet -c constraints.txt -e ".[dev]"
	touch $(STAMP)

demo: $(STAMP)
	rm -rf $(DEMO_OUT)
	$(BIN)/sfrdask synth --objects $(DEMO_OBJECTS) --seed 42 --out $(DEMO_OUT)/survey
	$(BIN)/sfrdask info $(DEMO_OUT)/survey/survey.h5 --catalog $(DEMO_OUT)/survey
	$(BIN)/sfrdask ingest $(DEMO_OUT)/survey/survey.h5 --catalog $(DEMO_OUT)/survey --out $(DEMO_OUT)/store.zarr
	$(BIN)/sfrdask plot-labels $(DEMO_OUT)/store.zarr --out $(DEMO_OUT)/labels.png
	$(BIN)/sfrdask preprocess $(DEMO_OUT)/store.zarr --out $(DEMO_OUT)/preprocess

test: $(STAMP)
	$(BIN)/python -m pytest

lint: $(STAMP)
	$(BIN)/ruff check sfrdask tests benchmarks

bench: $(STAMP)
	$(BIN)/python benchmarks/ingest.py --objects 3000 --out bench-output
	$(BIN)/python benchmarks/preprocess.py --objects 20000 --out bench-output

clean:
	rm -rf $(VENV) $(DEMO_OUT) bench-output
