"""Settings for the headless project, read from the environment (12-factor).

Every value has a safe development default, so ``manage.py`` works on a fresh
checkout with nothing but SQLite. ``DATABASE_URL`` picks the database. A
``.env`` file beside ``manage.py`` (or the file ``DJANGO_ENV_FILE`` names)
supplies any variable the environment does not set.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import django
from django.core.exceptions import ImproperlyConfigured

from cliproject.databases import databases_from_environment
from cliproject.env import (
    LOG_FORMATS,
    LOG_LEVELS,
    LONGEST_TIMEOUT_SECONDS,
    env_bool,
    env_choice,
    env_datetime,
    env_int,
    load_env_file,
    secret_key,
)
from cliproject.logconfig import logging_config

BASE_DIR = Path(__file__).resolve().parent.parent

# Before any variable is read: <BASE_DIR>/.env (or DJANGO_ENV_FILE) fills in what the
# environment leaves unset, so every cron line and command reaches the same database
# (never under pytest: see load_env_file).
load_env_file(BASE_DIR)

DEBUG = env_bool("DEBUG", True)

# A development key is fine while DEBUG is on; with DEBUG off it must come from
# the environment, and the error names the variable, never a value.
SECRET_KEY = secret_key(debug=DEBUG)

ALLOWED_HOSTS: list[str] = [h for h in os.environ.get("ALLOWED_HOSTS", "").split(",") if h]

INSTALLED_APPS = [
    "django.contrib.contenttypes",
    "django.contrib.auth",
    "profiles.apps.ProfilesConfig",
    "seeding.apps.SeedingConfig",
    "commands.apps.CommandsConfig",
    "signalmatrix.apps.SignalMatrixConfig",
    "signalaudit.apps.SignalAuditConfig",
    # Last: it makes receivers of the apps above switchable once they are connected.
    "switches.apps.SwitchesConfig",
]

# Django's Tasks framework delivers the welcome mail (profiles/welcome/tasks.py):
# built in from Django 6.0, the django-tasks backport on 5.2. The default runs a
# task at once in the process that enqueues it; TASKS_BACKEND=database queues it
# for `manage.py db_worker` (django-tasks-db) processes on any number of hosts.
_TASKS_PACKAGE = "django.tasks" if django.VERSION >= (6, 0) else "django_tasks"
if django.VERSION < (6, 0):
    INSTALLED_APPS.insert(-1, "django_tasks")  # before switches, which stays last
_tasks_backend = os.environ.get("TASKS_BACKEND", "immediate")
if _tasks_backend == "database":
    INSTALLED_APPS.insert(-1, "django_tasks_db")
    TASKS = {"default": {"BACKEND": "django_tasks_db.DatabaseBackend"}}
elif _tasks_backend == "immediate":
    TASKS = {"default": {"BACKEND": f"{_TASKS_PACKAGE}.backends.immediate.ImmediateBackend"}}
else:
    raise ImproperlyConfigured("TASKS_BACKEND must be immediate or database.")

# Headless: no URLs, views, templates, sessions or static files.
MIDDLEWARE: list[str] = []
TEMPLATES: list[dict[str, Any]] = []

# `check --deploy` checks written for sites that answer HTTP requests; this
# project serves none, so each is silenced with the reason.
SILENCED_SYSTEM_CHECKS = [
    "security.W001",  # SecurityMiddleware: there are no HTTP responses to add headers to
    "security.W002",  # X-Frame-Options: there are no pages to frame
    "security.W003",  # CSRF middleware: there are no forms or views
    "security.W020",  # ALLOWED_HOSTS: there are no requests whose Host header to check
]

# Receiver switches (docs/receivers.md): how stale a running process's view of
# them may get, and receivers of other apps to make switchable by dotted name.
RECEIVER_SWITCHES_REFRESH_SECONDS = env_int("RECEIVER_SWITCHES_REFRESH_SECONDS", 5, minimum=0)
RECEIVER_SWITCHES_EXTRA: list[str] = []

# SIGNAL_AUDIT=warn|error: every write that skips its receivers as a warning or an error
# at its line, for the whole process (docs/audit.md); off (the default) installs nothing.
SIGNAL_AUDIT = os.environ.get("SIGNAL_AUDIT", "off")

# seed_users: values for user model fields that are required and have no
# default, e.g. {"tenant": "acme"}; `seed_users --field NAME=VALUE` wins. Each
# value is validated by its field before anything is written.
SEED_USERS_FIELD_VALUES: dict[str, Any] = {}

# How long a connection attempt may take before a command gives up (exit 75).
# At least 1: libpq and MySQL read 0 as "wait for ever".
DATABASE_CONNECT_TIMEOUT = env_int("DATABASE_CONNECT_TIMEOUT", 5, minimum=1)

# A statement waits at most this long for a lock (row, table or, on SQLite, the
# database) before it fails instead of queueing behind another transaction.
# At least 1: PostgreSQL reads 0 as "wait for ever", SQLite as "never wait".
DATABASE_LOCK_TIMEOUT_SECONDS = env_int(
    "DATABASE_LOCK_TIMEOUT_SECONDS", 10, minimum=1, maximum=LONGEST_TIMEOUT_SECONDS
)
# Each write batch (seed_users, backfill_profiles) may run at most this long; a
# batch that times out rolls back whole and is retried with backoff
# BATCH_RETRIES times, then the command exits 75.
BATCH_STATEMENT_TIMEOUT_SECONDS = env_int(
    "BATCH_STATEMENT_TIMEOUT_SECONDS", 300, minimum=1, maximum=LONGEST_TIMEOUT_SECONDS
)
BATCH_RETRIES = env_int("BATCH_RETRIES", 3, minimum=0)
BATCH_RETRY_BACKOFF_SECONDS = 0.5


# DATABASE_URL, and LOCK_DATABASE_URL for backfill_profiles' run lock
# (cliproject/databases.py; docs/operations.md, "The backfill's lock").
_databases = databases_from_environment(
    os.environ,
    base_dir=BASE_DIR,
    connect_timeout=DATABASE_CONNECT_TIMEOUT,
    lock_timeout=DATABASE_LOCK_TIMEOUT_SECONDS,
)
DATABASES = _databases.databases
BACKFILL_LOCK_DATABASE = _databases.backfill_lock_database

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_USER_MODEL = "auth.User"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = False
USE_TZ = True

FIXTURE_DIRS = [BASE_DIR / "fixtures"]

# E-mail: files in var/mail/ in development, never the console (a mail on stdout
# would mix users' addresses into a command's output and break --format json);
# SMTP when EMAIL_HOST is set, and in production (DEBUG off) always: to the local
# MTA on localhost:25 by default.
_smtp_host = os.environ.get("EMAIL_HOST", "" if DEBUG else "localhost")
_smtp = {
    "host": _smtp_host,
    "port": env_int("EMAIL_PORT", 25, minimum=1, maximum=65535),
    "username": os.environ.get("EMAIL_HOST_USER", ""),
    "password": os.environ.get("EMAIL_HOST_PASSWORD", ""),
    "use_tls": env_bool("EMAIL_USE_TLS", False),
    "timeout": env_int("EMAIL_TIMEOUT", 10, minimum=1),
}
MAIL_DIRECTORY = Path(os.environ.get("EMAIL_FILE_PATH", BASE_DIR / "var" / "mail"))
_FILE_BACKEND = "django.core.mail.backends.filebased.EmailBackend"
_mail_options: dict[str, object]
if _smtp_host:
    _mail_backend, _mail_options = "django.core.mail.backends.smtp.EmailBackend", _smtp
else:
    _mail_backend = os.environ.get("EMAIL_BACKEND", _FILE_BACKEND)
    _mail_options = {"file_path": str(MAIL_DIRECTORY)} if _mail_backend == _FILE_BACKEND else {}
if django.VERSION >= (6, 1):  # MAILERS replaces EMAIL_BACKEND and the EMAIL_* settings
    MAILERS = {"default": {"BACKEND": _mail_backend, "OPTIONS": _mail_options}}
else:
    EMAIL_BACKEND = _mail_backend
    if _smtp_host:
        EMAIL_HOST = _smtp_host
        EMAIL_PORT = _smtp["port"]
        EMAIL_HOST_USER = _smtp["username"]
        EMAIL_HOST_PASSWORD = _smtp["password"]
        EMAIL_USE_TLS = _smtp["use_tls"]
        EMAIL_TIMEOUT = _smtp["timeout"]
    else:
        EMAIL_FILE_PATH = str(MAIL_DIRECTORY)
DEFAULT_FROM_EMAIL = os.environ.get("DEFAULT_FROM_EMAIL", "noreply@example.com")

# The welcome mail (docs/receivers.md, "The welcome mail"): a WelcomeMail row per
# user, delivered by `welcome_mails send` (cron) or a task worker.
# Users who joined before WELCOME_MAIL_SINCE get a suppressed record from
# `welcome_mails sync`, never a mail: deploying this does not mail every old user.
WELCOME_MAIL_SINCE = env_datetime("WELCOME_MAIL_SINCE")
# The user model's field that says when a user joined (for the cutoff and
# --joined-since/--joined-between); a model without it can use neither.
WELCOME_MAIL_JOINED_FIELD = "date_joined"
# A sender's lease on the records it claimed: a sender killed mid-batch leaves
# them to the next sender once this has passed.
WELCOME_MAIL_LEASE_SECONDS = env_int(
    "WELCOME_MAIL_LEASE_SECONDS", 300, minimum=1, maximum=LONGEST_TIMEOUT_SECONDS
)
# A transient SMTP error retries a record after BACKOFF * 2**(attempts - 1)
# seconds, until MAX_ATTEMPTS; then the record is failed.
WELCOME_MAIL_MAX_ATTEMPTS = env_int("WELCOME_MAIL_MAX_ATTEMPTS", 5, minimum=1)
WELCOME_MAIL_RETRY_BACKOFF_SECONDS = env_int(
    "WELCOME_MAIL_RETRY_BACKOFF_SECONDS", 60, minimum=0, maximum=LONGEST_TIMEOUT_SECONDS
)

LOGGING = logging_config(
    level=env_choice("LOG_LEVEL", "WARNING", LOG_LEVELS),
    log_format=env_choice("LOG_FORMAT", "text", LOG_FORMATS),
)
