# The two entry points a fresh machine needs (see README.md):
#   make demo   builds the reference workload and runs the closed loop on it, no cluster needed
#   make test   installs everything (Python deps, Go builds, Kubernetes binaries, the operator image)
#               and runs every test
#   make image  builds the operator image from the Dockerfile with buildah (cached by content hash;
#               needs root and Debian's runc, buildah, mmdebstrap and umoci, which `make test` installs)
VENV := .venv
STAMP := $(VENV)/.installed

.PHONY: demo test venv lint image
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

image: $(STAMP)
	$(VENV)/bin/python -m e2e.image build

lint: $(STAMP)
	$(VENV)/bin/ruff check operator tests e2e bench
	$(VENV)/bin/mypy
