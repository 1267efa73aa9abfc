# imgclf: `make up` runs the whole app locally, `make test` runs every test.
#   make up                  on LocalStack in host mode (no Docker, no account token)
#   make up EMULATOR=moto    on moto's server
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
EXTRAS := inference,local,frontend,load,dev
EMULATOR ?= localstack

.PHONY: up down test lint invoke load clean

$(STAMP): pyproject.toml layers/common/requirements.txt functions/inference/requirements.txt functions/inference/requirements-build.txt \
          infrastructure/requirements.txt frontend/requirements.txt load/requirements.txt tests/requirements.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e ".[$(EXTRAS)]"
	touch $(STAMP)

venv: $(STAMP)

up: $(STAMP)
	PYTHON=$(PYTHON) infrastructure/bootstrap.sh redis $(EMULATOR)
	$(PY) -m localcloud up --emulator $(EMULATOR)

down:
	$(PY) -m localcloud down

invoke: $(STAMP)
	$(PY) -m localcloud invoke $(FN) $(EVENT)

# Unit tests and the integration suite on LocalStack, then the integration suite on moto.
test: $(STAMP)
	PYTHON=$(PYTHON) infrastructure/bootstrap.sh redis browser localstack
	$(VENV)/bin/ruff check .
	$(PY) -m pytest --emulator localstack $(PYTEST_ARGS)
	$(PY) -m pytest tests/integration --emulator moto $(PYTEST_ARGS)

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

load: $(STAMP)
	PYTHON=$(PYTHON) infrastructure/bootstrap.sh redis $(EMULATOR)
	LOCALCLOUD_EMULATOR=$(EMULATOR) $(PY) -m load.run

clean:
	rm -rf $(VENV) .venv-localstack .localcloud .pytest_cache
