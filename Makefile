# Every target sets itself up: `make smoke` and `make test` work on a fresh clone.
SHELL := /bin/bash
PYTHON_BOOT ?= python3
VENV := .venv
PY := $(VENV)/bin/python
TORCH_SPEC ?= torch==2.13.0
STAMP := $(VENV)/.setup-stamp
# Every recipe (one training notebook each) and every other notebook with Kaggle metadata
# (kernel-metadata/NAME.json; `_`-files are not notebooks).
NOTEBOOKS := $(sort $(basename $(notdir $(wildcard recipes/*.toml))) \
               $(filter-out _%,$(basename $(notdir $(wildcard kernel-metadata/*.json)))))
KAGGLE_OPS := push status wait pull resume
POLL ?= 15
SHARED_DATA ?= ../shared/data
BUDGET ?= 30
# The shipped checkpoint (common.checkpoint.SHIPPED_CHECKPOINT; a test keeps the two equal).
CKPT ?= checkpoints/lite-v2.pt

.PHONY: setup test lint format build smoke bench demo demo-test report clean testset upload-data \
        $(foreach op,$(KAGGLE_OPS),$(addprefix $(op)-,$(NOTEBOOKS)))

setup: $(STAMP)

# Re-installs only when pyproject.toml changes (or TORCH_SPEC does).
$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON_BOOT) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q "$(TORCH_SPEC)"
	$(PY) -m pip install -q -e ".[dev]"
	@# silero-vad declares torchaudio, which would pull a CUDA torch; it runs without it.
	$(PY) -m pip install -q --no-deps "silero-vad>=5,<7"
	@echo "$(TORCH_SPEC)" > $(STAMP)

test: setup
	$(PY) -m pytest -q

lint: setup
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

format: setup
	$(PY) -m ruff format .
	$(PY) -m ruff check --fix .

build: setup
	$(PY) -m builders.build

smoke: setup
	$(PY) -m builders.smoke

# Size, speed and quality in one run. BUDGET: CPU minutes of training per recipe (3 recipes, one
# thread each, two side by side: about an hour at 30); finished runs in build/bench/runs are reused.
# Then the quantized exports, the loader, and DNSMOS on noisy_only/ (alone: python -m scripts.bench_dnsmos).
bench: setup
	$(PY) -m scripts.bench --budget-minutes $(BUDGET) --data $(SHARED_DATA)
	$(PY) -m scripts.bench_export --ckpt $(CKPT) --data $(SHARED_DATA)
	$(PY) -m scripts.bench_loader --data $(SHARED_DATA)
	$(PY) -m scripts.bench_dnsmos --data $(SHARED_DATA)
	$(PY) -m scripts.bench_scaling --data $(SHARED_DATA)

testset: setup
	$(PY) -m common data make-testset --data $(SHARED_DATA) --out build/testset

# RUNS: local run folders to compare too (e.g. RUNS="runs/a runs/b"); BASELINE: a run's label.
report: setup
	$(PY) -m builders.kaggle report $(if $(RUNS),--runs $(RUNS)) $(if $(BASELINE),--baseline "$(BASELINE)")

# Static pattern rules: GNU make never applies a plain pattern rule (`push-%:`) to a .PHONY
# target, which made `make push-dpt` print "Nothing to be done". POLL: first wait interval, s.
$(addprefix push-,$(NOTEBOOKS)): push-%: setup
	$(PY) -m builders.kaggle push $*
$(addprefix resume-,$(NOTEBOOKS)): resume-%: setup
	$(PY) -m builders.kaggle push $* --resume
$(addprefix status-,$(NOTEBOOKS)): status-%: setup
	$(PY) -m builders.kaggle status $*
$(addprefix wait-,$(NOTEBOOKS)): wait-%: setup
	$(PY) -m builders.kaggle wait $* --poll $(POLL)
$(addprefix pull-,$(NOTEBOOKS)): pull-%: setup
	$(PY) -m builders.kaggle pull $*
push-% status-% wait-% pull-% resume-%:
	@echo "error: no notebook '$*' (no recipes/$*.toml or kernel-metadata/$*.json); choose one of: $(NOTEBOOKS)" >&2; exit 2

# Your own speech + noise as a Kaggle dataset (docs/kaggle.md): DATA=FOLDER laid out as
# ../shared/data; DATASET=slug (default lse-speech-noise); INCLUDE_NC=1 keeps non-commercial files.
upload-data: setup
	@test -n "$(DATA)" || { echo "error: no folder given: make upload-data DATA=FOLDER [DATASET=slug] [INCLUDE_NC=1]" >&2; exit 2; }
	$(PY) -m builders.kaggle upload-data "$(DATA)" $(if $(DATASET),--dataset "$(DATASET)") \
		$(if $(filter 1 yes true,$(INCLUDE_NC)),--include-nc) --poll $(POLL)

demo: setup
	$(PY) -m common.demo --ckpt $(CKPT)

demo-test: setup
	$(PY) -m tests.e2e.install_browser
	$(PY) -m pytest -q tests/e2e

clean:
	rm -rf build
