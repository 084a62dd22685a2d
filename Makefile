# Two commands on a fresh machine: `make demo` and `make test`. Each sets up .venv itself.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEMO_OUT ?= demo-output

.PHONY: demo test test-slow lint bench clean

$(STAMP): pyproject.toml constraints.txt
	$(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	# torch first, pinned: the CPU build lies on disk here; a plain "torch" could pull multi-GB CUDA wheels
	$(BIN)/pip install --quiet "torch==2.13.0"
	$(BIN)/pip install --quiet -c constraints.txt -e ".[dev]"
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/sfrdask run configs/demo.yaml --run-dir $(DEMO_OUT) --force

test: $(STAMP)
	@# the slurm tests use a real one-node SLURM; it starts here when it can (root on Debian), else they skip
	@bash deploy/local/slurm.sh start || echo "make test: no local SLURM started; tests marked slurm will skip"
	$(BIN)/python -m pytest -m "not slow" --durations=15

# the integration tests (real clusters killed and cancelled, whole runs, benchmarks' --quick modes):
# CI's second job
test-slow: $(STAMP)
	@bash deploy/local/slurm.sh start || echo "make test-slow: no local SLURM started; tests marked slurm will skip"
	$(BIN)/python -m pytest -m slow --durations=25

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/lint-imports  # the layer contract in pyproject.toml (docs/architecture.md)

bench: $(STAMP)
	$(BIN)/python benchmarks/ingest.py --objects 3000 --out bench-output
	$(BIN)/python benchmarks/preprocess.py --objects 20000 --out bench-output
	$(BIN)/sfrdask synth --objects 20000 --seed 42 --flag0-fraction 0.55 --out bench-output/train-survey --overwrite
	$(BIN)/sfrdask ingest bench-output/train-survey/survey.h5 --catalog bench-output/train-survey \
		--out bench-output/train-store.zarr --image-zooms 0,2 --spectrum-zooms 0,2 --overwrite
	$(BIN)/sfrdask preprocess bench-output/train-store.zarr --out bench-output/train-preprocess
	$(BIN)/python benchmarks/train.py --store bench-output/train-store.zarr --out bench-output --parts accuracy,throughput
	$(BIN)/python benchmarks/train.py --store bench-output/train-store.zarr --out bench-output/ddp --parts ddp
	$(BIN)/sfrdask train --store bench-output/train-store.zarr --out bench-output/predict-runs \
		--model gbt-both,intermediate-fusion,physics-halpha-aperture --image-zoom 2 --spectrum-zoom 2
	$(BIN)/sfrdask train --store bench-output/train-store.zarr --out bench-output/predict-runs \
		--model gbt-both --image-zoom 0 --spectrum-zoom 0
	$(BIN)/python benchmarks/predict.py --store bench-output/train-store.zarr --out bench-output/predict \
		--runs $(addprefix bench-output/predict-runs/,gbt-both/image2-spectrum2-AVG \
			intermediate-fusion/image2-spectrum2-AVG physics-halpha-aperture/image2-spectrum2-AVG) \
		--throughput-runs $(addprefix bench-output/predict-runs/gbt-both/,image2-spectrum2-AVG image0-spectrum0-AVG)
	$(BIN)/python benchmarks/ddp_ceiling.py --zoom 0 --batch 64 --out bench-output
	$(BIN)/python benchmarks/stages.py --out bench-output
	$(BIN)/python benchmarks/scaling.py --out bench-output
	$(BIN)/python benchmarks/tree_metadata.py --out bench-output
	$(BIN)/python benchmarks/physics_agreement.py --out bench-output
	$(BIN)/python benchmarks/study_concurrency.py --out bench-output
	$(BIN)/python benchmarks/resolution_study.py --objects 8000 --seed 42 --pairs diagonal --out bench-output/resolution \
		--record benchmarks/results/resolution/done.jsonl

clean:
	rm -rf $(VENV) $(DEMO_OUT) bench-output
