# The two entry points a fresh machine needs (see README.md):
#   make demo   builds the reference workload and runs the closed loop on it, no cluster needed
#   make test   installs everything (Python deps, Go builds, Kubernetes binaries) and runs every test
VENV := .venv
STAMP := $(VENV)/.installed

.PHONY: demo test venv lint
venv: $(STAMP)

$(STAMP): pyproject.toml
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install -q --disable-pip-version-check -U pip
	$(VENV)/bin/pip install -q --disable-pip-version-check -e '.[dev]'
	touch $@

demo: $(STAMP)
	$(VENV)/bin/gc-tuner demo --enforce

test: $(STAMP)
	bash scripts/test.sh

lint: $(STAMP)
	$(VENV)/bin/ruff check operator tests e2e bench
	$(VENV)/bin/mypy
