# The two commands: `make demo` runs the main job, `make test` runs the tests.
# Both run `setup` first, which is idempotent and takes seconds the second time.
VENV := .venv
VIGIL := $(VENV)/bin/vigil

.PHONY: setup demo test lint bench clean

setup:
	@bash scripts/setup.sh

demo: setup
	$(VIGIL) demo

test: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/python -m pytest -q -ra --durations=15

lint: setup
	$(VENV)/bin/ruff check .

bench: setup
	$(VIGIL) bench detection
	$(VIGIL) bench tracking

clean:
	rm -rf $(VENV) out
