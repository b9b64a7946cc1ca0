# Two commands set everything up on a fresh machine:
#   make run   - virtualenv, pinned requirements, demo city (if absent), ETL load, dashboard on :8050
#   make test  - the same install plus test needs (Chromium, CJK font, Redis), then the whole suite
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
DEMO   := data/demo

.PHONY: run test install install-test demo load serve worker clean

# pip is the venv's last file: a venv made by a run that was interrupted is made again, not used half-made.
$(BIN)/pip:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

$(VENV)/.installed: requirements.txt constraints.txt | $(BIN)/pip
	$(BIN)/pip install -q -r requirements.txt -c constraints.txt
	touch $@

$(VENV)/.installed-test: $(VENV)/.installed requirements-test.txt
	$(BIN)/pip install -q -r requirements-test.txt -c constraints.txt
	touch $@

install: $(VENV)/.installed
install-test: $(VENV)/.installed-test

demo: install
	@test -f $(DEMO)/manifest.json || $(BIN)/python -m demo_city generate --out $(DEMO)

load: demo
	$(BIN)/python -m etl load-all

serve: install
	$(BIN)/python -m dashboard

run: load serve

worker: install
	$(BIN)/python -m etl watch

test: install-test
	bash scripts/system-deps.sh
	$(BIN)/python -m pytest

clean:
	rm -rf var data/demo
