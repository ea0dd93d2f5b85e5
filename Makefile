# Two commands for a fresh machine with Python 3.10+: `make demo` and `make test`
# (`make test-fast` while editing: the tests that start no process).
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
MANAGE := $(PY) manage.py

.PHONY: demo test test-fast lint bench clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev,bench]' $(EXTRAS)
	touch $@

# The demo, on a database and a mail directory of its own, both reset at the start,
# so every run prints the same figures; the project's .env is not read. The sizes
# are variables: make demo DEMO_SAVE=100 DEMO_BULK=100 DEMO_MORE=2000.
DEMO_DIR ?= $(CURDIR)/var/demo
DEMO_DATABASE_URL ?= sqlite:///$(DEMO_DIR)/demo.sqlite3
DEMO_SAVE ?= 1000
DEMO_BULK ?= 1000
DEMO_MORE ?= 20000

# Set up, then show the gap: users made through save() get profiles and welcome
# mails (files in $(DEMO_DIR)/mail/), users made by a bulk insert get neither
# (signal_audit names the line of the insert and the receivers it skipped), until
# backfill_profiles and welcome_mails sync + send close it.
demo: export DATABASE_URL = $(DEMO_DATABASE_URL)
demo: export EMAIL_FILE_PATH = $(DEMO_DIR)/mail
demo: export DJANGO_ENV_FILE =
demo: $(VENV)/.installed
	@mkdir -p $(DEMO_DIR) && rm -rf $(DEMO_DIR)/mail
	@$(MANAGE) migrate --verbosity 0 && $(MANAGE) flush --no-input --verbosity 0
	@echo "# The demo's database, emptied: DATABASE_URL=$(DEMO_DATABASE_URL)"
	@echo "# Two post_save receivers give every new user a profile and a welcome mail:"
	$(MANAGE) receivers list
	@echo "# ...but bulk_create() sends no signal (measured, then rolled back):"
	$(MANAGE) signal_matrix --operation save_insert --operation bulk_create
	@echo "# Users made through save(): the receivers run, the audit finds no gap:"
	$(MANAGE) signal_audit -- seed_users $(DEMO_SAVE) --via save --seed 1
	@echo "# Users made by a bulk insert: the audit names the line and the receivers it skipped:"
	$(MANAGE) signal_audit -- seed_users $(DEMO_BULK) --via bulk --seed 3
	$(MANAGE) seed_users $(DEMO_MORE) --via bulk --seed 2
	$(MANAGE) profiles_status
	@echo "# Closing the gap, as cron would:"
	$(MANAGE) backfill_profiles --dry-run
	$(MANAGE) backfill_profiles
	$(MANAGE) backfill_profiles --check
	$(MANAGE) welcome_mails sync
	$(MANAGE) welcome_mails send
	$(MANAGE) profiles_status
	@echo "# Go on with the demo's database: DATABASE_URL=$(DEMO_DATABASE_URL) $(MANAGE) --help"

# CI adds e.g. PYFLAGS="-X dev -W error::ResourceWarning" (.ci/run).
PYFLAGS ?=
PYTEST_ARGS ?=

# Everything: the in-process tests and the ones that start real processes (tests/system).
test: $(VENV)/.installed
	$(PY) $(PYFLAGS) -m pytest $(PYTEST_ARGS)

# The edit-test loop: leaves out tests/system (marker `processes`); under a minute on SQLite.
test-fast: $(VENV)/.installed
	$(PY) $(PYFLAGS) -m pytest -m "not processes" $(PYTEST_ARGS)

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy .

bench: $(VENV)/.installed
	$(PY) -m bench

clean:
	rm -rf $(VENV) db.sqlite3* .test-db*.sqlite3* var
