# Two commands on a fresh machine: `make demo` and `make test`. Everything else is optional.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
export SEEDANCE_HOME ?= $(CURDIR)/.seedance

.PHONY: demo test install ui bench clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check uv
	$(BIN)/uv pip install --quiet -p $(BIN)/python -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/seedance-pipeline generate --simulator --provider novita \
		--image seedance_pipeline/sample_data/sample.png \
		--prompt "Slow dolly-in over the mountains at dusk, the sun sinking behind the ridge." \
		--duration 5 --resolution 720p --audio --out $(SEEDANCE_HOME)/demo/novita.mp4 --json

test: $(STAMP)
	$(BIN)/python -m pytest -n 2 -q -p no:cacheprovider

clean:
	rm -rf $(VENV) .seedance
