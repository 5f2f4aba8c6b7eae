# `make demo` and `make test` set everything up on first use: a virtual environment in .venv,
# (re)installed whenever requirements.txt changes.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python

.PHONY: demo test clean

$(VENV)/installed: requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -r requirements.txt
	touch $@

demo: $(VENV)/installed
	$(PY) degrade.py --demo -o results/degrade
	@echo "Degraded demo photos: results/degrade/ (open *_preview.png: HR, then each LR version)"

test: $(VENV)/installed
	$(PY) -m pytest

clean:
	rm -rf results .pytest_cache
