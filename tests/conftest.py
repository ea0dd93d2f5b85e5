from __future__ import annotations

import io
import os
import random
import subprocess
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connections

# Re-exported: tests import them from here (tests/helpers/processes.py is their home).
from tests.helpers.processes import (
    PROJECT_DIR,
    SYSTEM_TESTS,
    Environment,
    child_environment,
    completed,
    database_url,
)

__all__ = [
    "FAULT_SEED",
    "PROJECT_DIR",
    "child_environment",
    "database_url",
    "run_command",
    "unreachable_database_url",
]

# The seed of the fault tests' random moments (tests/system/test_faults.py): printed in
# the header, so FAULT_SEED=<it> replays a red run, or one test of it (see fault_random).
FAULT_SEED = int(os.environ.get("FAULT_SEED") or time.time_ns() % 10**6)


@pytest.fixture(autouse=True)
def fresh_switch_state() -> Iterator[None]:
    """Each test starts, and leaves, as a new process would: no snapshot of the stored
    receiver switches, no switch change waiting for its transaction to commit."""
    from switches import state

    def reset() -> None:
        state.forget()
        state._uncommitted.clear()

    reset()
    yield
    reset()


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
    kept: list[pytest.Item] = []
    dropped: list[pytest.Item] = []
    for item in items:
        if item.path.is_relative_to(SYSTEM_TESTS):
            item.add_marker(pytest.mark.processes)
        marks = list(item.iter_markers("applies_if"))
        (kept if all(mark.args[0] for mark in marks) else dropped).append(item)
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = kept


def pytest_report_header(config: pytest.Config) -> list[str]:
    """Say which backend this run really uses, so CI output shows it, and the fault seed."""
    import django
    from django.conf import settings

    engine = settings.DATABASES["default"]["ENGINE"].rsplit(".", 1)[-1]
    return [
        f"django: {django.get_version()}, database backend: {engine}, "
        f"user model: {settings.AUTH_USER_MODEL}",
        f"fault seed: {FAULT_SEED} (FAULT_SEED={FAULT_SEED} replays the random moments)",
    ]


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int) -> None:
    """The seed again after a red run: ``-q`` (CI) leaves the header out."""
    if exitstatus == pytest.ExitCode.TESTS_FAILED:
        terminalreporter.write_line(
            f"fault seed: {FAULT_SEED}; replay with FAULT_SEED={FAULT_SEED}"
        )


@pytest.fixture
def fault_random(request: pytest.FixtureRequest) -> random.Random:
    """A random stream for one test, from FAULT_SEED and the test's id: the same moments
    again whichever other tests run with it (``-k`` one red test)."""
    return random.Random(f"{FAULT_SEED}:{request.node.nodeid}")


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
    """Run ``manage.py`` in a fresh process against the test database, to its end."""

    def run(
        *args: str, env: Environment | None = None, timeout: float = 120, **kwargs: Any
    ) -> subprocess.CompletedProcess[str]:
        return completed(*args, env=env, timeout=timeout, **kwargs)

    return run
