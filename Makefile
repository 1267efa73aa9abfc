# imgclf: `make up` runs the whole app locally, `make test` runs every test.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
EXTRAS := inference,local,frontend,load,dev

.PHONY: up down test lint invoke load clean

$(STAMP): pyproject.toml layers/common/requirements.txt functions/inference/requirements.txt \
          infrastructure/requirements.txt frontend/requirements.txt load/requirements.txt tests/requirements.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e ".[$(EXTRAS)]"
	touch $(STAMP)

venv: $(STAMP)

up: $(STAMP)
	infrastructure/bootstrap.sh redis
	$(PY) -m localcloud up

down:
	$(PY) -m localcloud down

invoke: $(STAMP)
	$(PY) -m localcloud invoke $(FN) $(EVENT)

test: $(STAMP)
	infrastructure/bootstrap.sh redis browser
	$(VENV)/bin/ruff check .
	$(PY) -m pytest $(PYTEST_ARGS)

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

load: $(STAMP)
	infrastructure/bootstrap.sh redis
	$(PY) -m load.run

clean:
	rm -rf $(VENV) .localcloud .pytest_cache
