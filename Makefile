# The two commands a newcomer needs: `make demo` and `make test`.
# Both create .venv themselves. TORCH pins the CPU build found on this machine's
# pip path; elsewhere point pip at a CPU wheel index (PIP_EXTRA_INDEX_URL) first.
PYTHON ?= python3
TORCH ?= torch==2.13.0
VENV := .venv
BIN := $(VENV)/bin

.PHONY: demo workload-demo hil-demo hil-check test lint wheel-check bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

$(VENV)/.core: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e .
	touch $@

$(VENV)/.full: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q "$(TORCH)"
	$(BIN)/pip install -q -e ".[measure,dev,flower,ray,analysis,fast]"
	touch $(VENV)/.core $@

demo: $(VENV)/.core
	$(BIN)/edgetwin simulate scenarios/thousand_clients.yaml --out runs/thousand-clients --overwrite

workload-demo: $(VENV)/.core
	$(BIN)/edgetwin workload --model gemma-3-270m --method lora --lora-rank 8 --lora-alpha 32 \
	  --lora-targets q_proj,k_proj,v_proj,o_proj --batch 1 --seq 64 --grad-accum 8 \
	  --serialization npy --device all --plot runs/workload.png

# the attached-device loop on this host: two local device classes calibrated, a run over
# them simulated and replayed on them (about ten minutes; see docs/devices.md)
HIL_DEVICES := scenarios/devices/hil_local.yaml
scenarios/calibrated/%.yaml: | $(VENV)/.full
	$(BIN)/edgetwin calibrate --device $* --devices $(HIL_DEVICES) --quick --resume

hil-demo: scenarios/calibrated/one-core.yaml scenarios/calibrated/two-core.yaml
	$(BIN)/edgetwin simulate scenarios/hil_local.yaml --out runs/hil-local --overwrite
	$(BIN)/edgetwin replay runs/hil-local --devices $(HIL_DEVICES) --sample 40 --recalibrate

# after hil-demo: the same cross-check with the profiles its replay recalibrated, and with
# the one-core profile made 1.3 times too fast (which must come out inconsistent)
hil-check: | $(VENV)/.full
	$(BIN)/python benchmarks/crosscheck_chain.py --profiles runs/hil-local/replay/profiles

# mypy checks the package as it is installed: the folders under their import names,
# laid out as links in build/typecheck
TYPECHECK := build/typecheck/edgetwin
lint: $(VENV)/.full
	$(BIN)/ruff check .
	rm -rf build/typecheck && mkdir -p $(TYPECHECK)
	for f in edgetwin/*; do ln -s ../../../$$f $(TYPECHECK)/; done
	for d in profiles calibration emulator hil scenarios; do ln -s ../../../$$d $(TYPECHECK)/$$d; done
	$(BIN)/mypy

test: lint
	$(BIN)/pytest -q --durations=15

# the wheel built and installed into a fresh venv outside the source tree, where
# `edgetwin scenarios list`, `edgetwin simulate thousand_clients` and `import edgetwin` run
wheel-check: $(VENV)/.full
	PYTHON=$(PYTHON) .ci/wheel_check

# the engine fleet_speed.py compares against (before its second speed step), installed
# apart from this checkout from the repository's history
BASELINE ?= 6c26870
build/baseline-%/edgetwin/__init__.py: | $(VENV)/.full
	rm -rf build/baseline-src-$* build/baseline-$*
	mkdir -p build/baseline-src-$*
	git archive $* | tar -x -C build/baseline-src-$*
	$(BIN)/pip install -q --no-deps --target build/baseline-$* build/baseline-src-$*
	rm -rf build/baseline-src-$*

bench: build/baseline-$(BASELINE)/edgetwin/__init__.py
	$(BIN)/python benchmarks/fleet_speed.py --baseline build/baseline-$(BASELINE)
	$(BIN)/python benchmarks/memory_vs_measured.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis build dist

# every generated figure the README and docs quote, produced again and written in place
# (about 20 minutes here); `--check` compares instead (the CI test reruns the cheap ones)
docs-figures: $(VENV)/.full
	$(BIN)/python benchmarks/docs_figures.py
