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

# Set up, then show the gap: users made through save() get profiles and welcome
# mails (files in var/mail/), users made by a bulk insert get neither (signal_audit
# names the line of the insert and the receivers it skipped), until
# backfill_profiles and welcome_mails sync + send close it.
demo: $(VENV)/.installed
	$(MANAGE) migrate --verbosity 0
	$(MANAGE) receivers list
	$(MANAGE) signal_audit -- seed_users 1000 --via save --seed 1
	$(MANAGE) signal_audit -- seed_users 1000 --via bulk --seed 3
	$(MANAGE) seed_users 20000 --via bulk --seed 2
	$(MANAGE) profiles_status
	-$(MANAGE) backfill_profiles --check
	$(MANAGE) backfill_profiles
	$(MANAGE) backfill_profiles --check
	$(MANAGE) welcome_mails sync
	$(MANAGE) welcome_mails send
	$(MANAGE) welcome_mails status
	$(MANAGE) profiles_status

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
	rm -rf $(VENV) db.sqlite3 .test-db*.sqlite3* var/mail
