# kameleoon-destination: every command a newcomer needs.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
BIN    := $(VENV)/bin
PROTO  := protos/kameleoon/destination/v1/destination.proto

# The modules `make mutate` mutates (the event path up to the outbox's interface and sealing); add a
# module or a package's files here. The deliverer and the stores are a second run, `make mutate-outbox`:
# together they do not fit in an hour on this 2-core machine (tests/MUTANTS.md has the measurements).
MUTATE ?= service/ingest/parse.py service/routing/router.py service/api/pipeline.py service/api/servicer.py \
          service/routing/validation.py service/delivery/sync.py service/delivery/client.py service/delivery/idempotency.py \
          service/delivery/credentials.py service/outbox/accept.py service/outbox/window.py service/outbox/base.py \
          service/outbox/sealing.py
MUTATE_OUTBOX ?= service/outbox/deliverer.py service/outbox/sqlite.py service/outbox/postgres.py

.PHONY: install proto proto-check docs docs-check lint format test demo screenshot goldens bench mutate mutate-outbox clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml clients/python/pyproject.toml tests/clients/node/package-lock.json
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e clients/python -e '.[dev]'
	@# Segment's Node library for tests/test_http_api.py, when Node.js is here (CI installs it; elsewhere that test skips).
	@if command -v npm >/dev/null; then cd tests/clients/node && npm ci --no-audit --no-fund --loglevel=error; fi
	touch $@

# The one codegen command. Stubs land in clients/python/kameleoon/destination/v1
# (committed, never edited by hand); the server imports them from there.
proto: install
	$(PY) -m tools.gen_proto

# Fails when the committed stubs differ from what protos/ generates.
proto-check: install
	$(PY) -m tools.gen_proto --check

# docs/configuration.md, generated from the settings table (service/config/settings.py); a test fails when
# the committed file differs (tests/test_docs.py), docs-check says the same alone.
docs: install
	$(PY) -m tools.gen_config_docs

docs-check: install
	$(PY) -m tools.gen_config_docs --check

# The layout's import contracts (pyproject's [tool.importlinter]: stages import down the flow, no
# cycles, the outbox's stores below everything of theirs), ruff's lint and format check, mypy on service/.
lint: install
	$(BIN)/lint-imports
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

# Formats the code and applies ruff's safe fixes (what make lint checks).
format: install
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

# The suite in TEST_WORKERS processes (pytest-xdist; 0: all in this one). Most of a test's time is
# waiting on subprocesses, servers and the stand-in, time another worker uses; each worker has its own
# PostgreSQL server (tests/outbox/pg.py). Not in pyproject's addopts: make mutate runs pytest without it.
# --dist worksteal: a worker that runs out of tests takes half of the other's queue. With the default
# (load), tests go out in runs of collection order, queued ahead: one worker was left with the
# subprocess tests at the end and finished 50 s after the other. 4 workers on the 2 cores: the suite
# took 57-79 s over 22 suites (3: 62-69 s; 2: 85 s), measured on this machine, quiet otherwise.
TEST_WORKERS ?= 4

test: install
	$(PY) -m pytest -n $(TEST_WORKERS) --dist worksteal

demo: install
	$(BIN)/kameleoon-destination demo

# docs/operator-page.png, the README's picture of the operator's page: the browser test's screenshot of the
# overview (needs Debian's chromium and chromium-driver).
screenshot: install
	KAMELEOON_SCREENSHOTS=docs $(PY) -m pytest -q -p no:cacheprovider tests/test_page_browser.py

# Side-by-side benchmark: the service against Segment's runtime (when tools/oracle is installed)
# and the raw HTTP ceiling, in one run. Report in bench/out/. BENCH_ARGS=--quick for a smoke run;
# BENCH_ARGS=--queued for queued delivery (accepting into the outbox, draining a backlog: bench/queued.py).
bench: install
	$(PY) -m bench $(BENCH_ARGS)

# Mutation testing (mutmut): how many small breakages of $(MUTATE) the tests catch, with the
# survivors listed (tests/MUTANTS.md says why the remaining ones are harmless). Reports only;
# not part of `make test` or CI (2,346 mutants, 96.1% killed: 38 minutes in all on this quiet 2-core
# machine, 59.5 of mutant testing alone on a loaded one). MUTATE_WORKERS=N runs N mutants at once (default 8).
mutate: install
	$(PY) -m tools.mutate $(MUTATE)

# The outbox's deliverer and stores, a run of its own (2,322 mutants, 89.6%, 93.4% without SQL in
# another case: 44 minutes in all on this quiet machine).
mutate-outbox: install
	$(PY) -m tools.mutate $(MUTATE_OUTBOX)

# Re-records tests/goldens from Segment's runtime (needs Node.js and npm).
goldens: install
	tools/oracle/install.sh
	cd tools/oracle && node record_actions.js && node record_events.js && node record_mapping.js && node record_filters.js && node record_ingest.js

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache mutants
