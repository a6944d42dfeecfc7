# Everything installs into ./.venv from requirements.txt; a fresh machine needs only python3, pip and make.
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell python3 -c "import hashlib,sys;print(hashlib.sha1(open('requirements.txt','rb').read()).hexdigest()[:12])")
# asl-validator (npm, pinned in .ci/asl/package-lock.json) checks every state machine definition the stack can build
# (tests/infra/test_definition_rules.py); `npm ci` installs it again only when the lock changes. Needs node and npm.
ASL := .ci/asl
ASL_STAMP := $(ASL)/node_modules/.installed-$(shell python3 -c "import hashlib,sys;print(hashlib.sha1(open('$(ASL)/package-lock.json','rb').read()).hexdigest()[:12])")

.PHONY: demo test asl lint format bench scale faults clean checkov

$(STAMP): requirements.txt
	python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	rm -f $(VENV)/.installed-* && touch $@

## Run the pipeline end to end against local S3 and SNS (moto, in-process). SOURCE_DIR=path seeds real files.
demo: $(STAMP)
	$(PY) -m handler demo $(if $(SOURCE_DIR),--source-dir $(SOURCE_DIR))

$(ASL_STAMP): $(ASL)/package.json $(ASL)/package-lock.json
	cd $(ASL) && npm ci --no-audit --no-fund --loglevel=error
	rm -f $(ASL)/node_modules/.installed-* && touch $@

## asl-validator into .ci/asl/node_modules, exactly as locked.
asl: $(ASL_STAMP)

# checkov (pip, every package pinned in .ci/checkov/requirements.txt) in its own venv: its pins clash with ours.
CHECKOV_VENV := .venv-checkov
CHECKOV_STAMP := $(CHECKOV_VENV)/.installed-$(shell python3 -c "import hashlib,sys;print(hashlib.sha1(open('.ci/checkov/requirements.txt','rb').read()).hexdigest()[:12])")

$(CHECKOV_STAMP): .ci/checkov/requirements.txt
	python3 -m venv $(CHECKOV_VENV)
	$(CHECKOV_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(CHECKOV_VENV)/bin/python -m pip install --quiet -r .ci/checkov/requirements.txt
	rm -f $(CHECKOV_VENV)/.installed-* && touch $@

## checkov on the stack transcribed to CloudFormation (dev stack, under mocks), offline; fails unless what it
## reports is exactly docs/policy.md's table of findings. Template and report land in build/checkov/.
checkov: $(STAMP) $(CHECKOV_STAMP)
	CHECKOV_VENV=$(CHECKOV_VENV) $(PY) -m tests.infra.checkov_review

## The whole test suite (unit, moto integration, CLI over HTTP, Pulumi mocks, Step Functions end to end, the state
## machine definitions through asl-validator, checkov on the transcribed stack against docs/policy.md's table).
## One pytest worker per core (pytest-xdist), each test handed to whichever is free: every test builds its own
## servers and buckets, so none depends on another's order. PYTEST_FLAGS adds flags (e.g. -x, -k lock, -n 0).
test: $(STAMP) $(ASL_STAMP) $(CHECKOV_STAMP)
	$(PY) -m pytest -n auto --dist load $(PYTEST_FLAGS)

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: $(STAMP)
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

## Side-by-side throughput against aws-cli, s5cmd and rclone on local S3 servers (see bench/README.md).
bench: $(STAMP)
	$(PY) -m pip install --quiet -r bench/requirements.txt
	$(PY) -m bench $(BENCH_FLAGS)

## Scale: first run, no-op night and a 1 % change night at 100k keys (and more: SCALE_FLAGS="--keys 100k,1M
## --mode both") on rclone serve s3, beside bare listings; report on stdout (see docs/SCALE.md).
scale: $(STAMP)
	$(PY) -m pip install --quiet -r bench/requirements.txt
	$(PY) -m bench.scale $(SCALE_FLAGS)

## The exactly-once fault campaigns, 30 trials per setting (see docs/RELIABILITY.md): the CLI's (issue 7) and the
## state machine's (issue 21, FAULT_FLAGS="-k sfn" alone). FAULT_TRIALS=N changes the count, FAULT_SEED=N replays
## one seed, FAULT_FLAGS adds pytest flags (e.g. -k kill).
faults: $(STAMP)
	$(PY) -m pip install --quiet -r tests/faults/requirements.txt
	FAULT_TRIALS=$(or $(FAULT_TRIALS),30) $(PY) -m pytest tests/faults $(FAULT_FLAGS)

clean:
	rm -rf $(VENV) $(CHECKOV_VENV) .pytest_cache .ruff_cache
