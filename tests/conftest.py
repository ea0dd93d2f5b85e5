from __future__ import annotations

import io
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connections

PROJECT_DIR = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True)
def fresh_switch_cache() -> None:
    """Each test reads receiver switches anew; a cached read must not leak between tests."""
    from switches import state

    state.forget()


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "applies_if(condition, reason): collect the test only where it can mean something "
        "(a backend, a kind of user model); elsewhere it is deselected, never skipped",
    )


@pytest.hookimpl(tryfirst=True)  # before -m reads the markers
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark every test under tests/system ``processes``; deselect the tests that do not
    apply to this backend or user model.

    A skip must keep meaning "something that should have run did not"; a test
    of PostgreSQL's COPY under SQLite, or of a required field under a user model
    that has none, is not such a test: CI runs it where it applies.
    """
    system = PROJECT_DIR / "tests" / "system"
    kept: list[pytest.Item] = []
    dropped: list[pytest.Item] = []
    for item in items:
        if item.path.is_relative_to(system):
            item.add_marker(pytest.mark.processes)
        marks = list(item.iter_markers("applies_if"))
        (kept if all(mark.args[0] for mark in marks) else dropped).append(item)
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = kept


def pytest_report_header(config: pytest.Config) -> list[str]:
    """Say which backend this run really uses, so CI output shows it."""
    import django
    from django.conf import settings

    engine = settings.DATABASES["default"]["ENGINE"].rsplit(".", 1)[-1]
    return [
        f"django: {django.get_version()}, database backend: {engine}, "
        f"user model: {settings.AUTH_USER_MODEL}"
    ]


def database_url(alias: str = "default") -> str:
    """A DATABASE_URL for the database ``alias`` points at now (the test database in tests)."""
    s = connections[alias].settings_dict
    vendor = connections[alias].vendor
    if vendor == "sqlite":
        return f"sqlite:///{s['NAME']}"
    scheme = {"postgresql": "postgres", "mysql": "mysql"}[vendor]
    auth = quote(s["USER"] or "")
    if s["PASSWORD"]:
        auth += ":" + quote(s["PASSWORD"])
    host = s["HOST"] or "127.0.0.1"
    port = f":{s['PORT']}" if s["PORT"] else ""
    return f"{scheme}://{auth}@{host}{port}/{s['NAME']}"


def run_command(name: Any, *args: Any, **options: Any) -> tuple[str, str, int]:
    """call_command, returning (stdout, stderr, returncode) as adamchainz's helpers do."""
    out, err = io.StringIO(), io.StringIO()
    try:
        call_command(name, *args, stdout=out, stderr=err, **options)
        code = 0
    except CommandError as exc:
        err.write(str(exc))
        code = exc.returncode
    return out.getvalue(), err.getvalue(), code


def child_environment() -> dict[str, str]:
    """What a child ``manage.py`` needs to use this run's test database and settings module."""
    # Not settings.SETTINGS_MODULE: under pytest-django's ``settings`` fixture it is None.
    # pytest-django puts the module it was given (ini or --ds) in the environment.
    return {
        "DATABASE_URL": database_url(),
        "DJANGO_SETTINGS_MODULE": os.environ.get("DJANGO_SETTINGS_MODULE", "cliproject.settings"),
        "PYTHONUNBUFFERED": "1",
    }


def unreachable_database_url() -> str:
    """A DATABASE_URL whose server refuses connections: something a rerun can succeed at.

    SQLite has no server, and a path it cannot open is a setting to fix (exit 78),
    so SQLite runs use a refused PostgreSQL port (psycopg is a dev dependency).
    """
    if connections["default"].vendor == "mysql":
        return "mysql://nobody@127.0.0.1:1/none"
    return "postgres://nobody@127.0.0.1:1/none"


@pytest.fixture
def manage() -> Callable[..., subprocess.CompletedProcess[str]]:
    """Run ``manage.py`` in a fresh process against the test database."""

    def run(
        *args: str, env: dict[str, str] | None = None, timeout: float = 120, **kwargs: Any
    ) -> subprocess.CompletedProcess[str]:
        full_env = {**os.environ, **child_environment()}
        full_env.update(env or {})
        return subprocess.run(
            [sys.executable, str(PROJECT_DIR / "manage.py"), *args],
            cwd=PROJECT_DIR,
            env=full_env,
            capture_output=True,
            text=True,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
            **kwargs,
        )

    return run
