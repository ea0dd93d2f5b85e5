from __future__ import annotations

import os
import random
import subprocess
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.helpers.processes import SYSTEM_TESTS, Environment, completed

# The one line a project adds to fail tests on writes that skip receivers (docs/audit.md).
pytest_plugins = ["signalaudit.pytest_plugin"]

# The seed of the fault tests' random moments (tests/system/test_faults.py): printed in
# the header, so FAULT_SEED=<it> replays a red run, or one test of it (see fault_random).
FAULT_SEED = int(os.environ.get("FAULT_SEED") or time.time_ns() % 10**6)


@pytest.fixture(autouse=True)
def fresh_switch_state() -> Iterator[None]:
    """Each test starts, and leaves, as a new process would: no snapshot of the stored
    receiver switches, no switch change waiting for its transaction to commit."""
    from switches import state

    state.reset()
    yield
    state.reset()


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


@pytest.fixture
def manage() -> Callable[..., subprocess.CompletedProcess[str]]:
    """Run ``manage.py`` in a fresh process against the test database, to its end."""

    def run(
        *args: str, env: Environment | None = None, timeout: float = 120, **kwargs: Any
    ) -> subprocess.CompletedProcess[str]:
        return completed(*args, env=env, timeout=timeout, **kwargs)

    return run
