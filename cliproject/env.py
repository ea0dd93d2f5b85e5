"""Typed settings read from the environment: a bad value stops start-up naming the variable.

Plain functions of a mapping (``os.environ`` by default), so tests call them
in-process with a dict instead of starting ``manage.py`` for every value. Each
error names the variable and never its value: the value may be a secret, and
``manage.py`` prints the message as it is (one line, exit 78).
"""

from __future__ import annotations

import io
import os
from collections.abc import Mapping, MutableMapping
from datetime import datetime, timezone
from pathlib import Path

from django.core.exceptions import ImproperlyConfigured
from dotenv import dotenv_values
from dotenv.parser import parse_stream

# PostgreSQL takes lock_timeout and statement_timeout in milliseconds up to 2^31 - 1,
# and SQLite's busy timeout overflows beyond that into "never wait": the longest
# timeout every backend holds (about 24 days).
LONGEST_TIMEOUT_SECONDS = (2**31 - 1) // 1000

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def env_bool(name: str, default: bool, *, environ: Mapping[str, str] = os.environ) -> bool:
    value = environ.get(name)
    if value is None:
        return default
    if value.strip().lower() in _TRUE:
        return True
    if value.strip().lower() in _FALSE:
        return False
    raise ImproperlyConfigured(f"{name} must be a boolean (1/0, true/false, yes/no, on/off).")


def env_int(
    name: str,
    default: int,
    *,
    minimum: int,
    maximum: int | None = None,
    environ: Mapping[str, str] = os.environ,
) -> int:
    """An integer setting; outside ``minimum``..``maximum`` it stops start-up naming ``name``."""
    value = environ.get(name)
    if value is None or value == "":
        return default
    bounds = f"from {minimum} to {maximum}" if maximum is not None else f"of at least {minimum}"
    try:
        number = int(value)
    except ValueError:
        number = None
    if number is None or number < minimum or (maximum is not None and number > maximum):
        raise ImproperlyConfigured(f"{name} must be a whole number {bounds}.")
    return number


def env_datetime(name: str, *, environ: Mapping[str, str] = os.environ) -> datetime | None:
    """An ISO 8601 date or date and time (e.g. 2026-12-01 or 2026-12-01T09:00+01:00);
    one without a zone is UTC. Unset or empty: None."""
    value = environ.get(name, "").strip()
    if not value:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise ImproperlyConfigured(
            f"{name} must be an ISO 8601 date or date and time, e.g. 2026-12-01T00:00+00:00."
        ) from None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=timezone.utc)


def secret_key(*, debug: bool, environ: Mapping[str, str] = os.environ) -> str:
    """SECRET_KEY from the environment; a development key only while DEBUG is on."""
    key = environ.get("SECRET_KEY", "")
    if key:
        return key
    if not debug:
        raise ImproperlyConfigured("SECRET_KEY must be set in the environment when DEBUG is off.")
    return "django-insecure-development-only-key-do-not-use-in-production"


def load_env_file(
    base_dir: Path,
    *,
    read_default: bool | None = None,
    environ: MutableMapping[str, str] = os.environ,
) -> Path | None:
    """Put the variables of the project's env file into ``environ``, never over one set.

    The file is ``DJANGO_ENV_FILE`` if set (empty: none), else ``<base_dir>/.env``
    unless ``read_default`` is off. By default it is off under pytest (which sets
    ``PYTEST_VERSION`` for its session and the processes it starts): a developer's
    .env must not aim the test suite at a real database or mail server; a test
    names a file in ``DJANGO_ENV_FILE`` instead. Read by python-dotenv without ``${...}``
    expansion, as systemd's ``EnvironmentFile=`` reads it. So cron lines, systemd
    units and a shell reach the same database with nothing on the command line,
    and a variable given to the process still wins. A line it cannot parse stops
    start-up naming the file and the line. Returns the file read, or None.
    """
    named = environ.get("DJANGO_ENV_FILE")
    if read_default is None:
        read_default = "PYTEST_VERSION" not in environ
    if named == "" or (named is None and not read_default):
        return None
    path = Path(named) if named else base_dir / ".env"
    if not path.is_file():
        if named:
            raise ImproperlyConfigured("DJANGO_ENV_FILE names no file that exists.")
        return None
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        raise ImproperlyConfigured(f"The env file {path} cannot be read.") from None
    for binding in parse_stream(io.StringIO(text)):
        if binding.error:
            raise ImproperlyConfigured(
                f"The env file {path} has a line it cannot read: line {binding.original.line}."
            )
    for name, value in dotenv_values(stream=io.StringIO(text), interpolate=False).items():
        if value is not None:
            environ.setdefault(name, value)
    return path


LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
LOG_FORMATS = ("text", "json")


def env_choice(
    name: str, default: str, choices: tuple[str, ...], *, environ: Mapping[str, str] = os.environ
) -> str:
    """One of ``choices`` (case-insensitive, returned as listed); else it stops start-up."""
    value = environ.get(name, "").strip()
    if not value:
        return default
    for choice in choices:
        if value.lower() == choice.lower():
            return choice
    raise ImproperlyConfigured(f"{name} must be one of {', '.join(choices)}.")
