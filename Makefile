# The two commands a newcomer needs: `make demo` and `make test`.
# Both create .venv themselves. TORCH pins the CPU build found on this machine's
# pip path; elsewhere point pip at a CPU wheel index (PIP_EXTRA_INDEX_URL) first.
PYTHON ?= python3
TORCH ?= torch==2.13.0
VENV := .venv
BIN := $(VENV)/bin

.PHONY: demo workload-demo test lint bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

$(VENV)/.core: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e .
	touch $@

$(VENV)/.full: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q "$(TORCH)"
	$(BIN)/pip install -q -e ".[measure,dev]"
	touch $(VENV)/.core $@

demo: $(VENV)/.core
	$(BIN)/edgetwin simulate scenarios/thousand_clients.yaml --out runs/thousand-clients

workload-demo: $(VENV)/.core
	$(BIN)/edgetwin workload --model gemma-3-270m --method lora --lora-rank 8 --lora-alpha 32 \
	  --lora-targets q_proj,k_proj,v_proj,o_proj --batch 1 --seq 64 --grad-accum 8 \
	  --serialization npy --device all --plot runs/workload.png

lint: $(VENV)/.full
	$(BIN)/ruff check .
	$(BIN)/mypy

test: lint
	$(BIN)/pytest -q

bench: $(VENV)/.full
	$(BIN)/python benchmarks/fleet_speed.py
	$(BIN)/python benchmarks/memory_vs_measured.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis
