"""``manage.py`` in a background process, and waiting on a condition, for multi-process tests.

Every process is reaped and its pipes closed whatever happens in the test
(``python -X dev -W error::ResourceWarning`` in CI turns a leak into a failure).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from tests.conftest import PROJECT_DIR, child_environment


def manage_env(env: dict[str, str] | None = None) -> dict[str, str]:
    """The environment of a child ``manage.py``: the test database and this run's settings."""
    return {**os.environ, **child_environment(), **(env or {})}


@contextmanager
def spawned(*args: str, env: dict[str, str] | None = None) -> Iterator[subprocess.Popen[str]]:
    """``manage.py *args`` running in the background; killed if still running at the end."""
    with subprocess.Popen(
        [sys.executable, str(PROJECT_DIR / "manage.py"), *args],
        cwd=PROJECT_DIR,
        env=manage_env(env),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    ) as proc:
        try:
            yield proc
        finally:
            if proc.poll() is None:
                proc.kill()
            proc.communicate(timeout=60)  # drains and closes the pipes


def wait_until(
    condition: Callable[[], bool], *procs: subprocess.Popen[str], timeout: float = 60
) -> None:
    """Poll ``condition`` until it holds; fail at once if one of ``procs`` exits meanwhile."""
    deadline = time.monotonic() + timeout
    while not condition():
        for proc in procs:
            if proc.poll() is not None:
                out, err = proc.communicate()
                raise AssertionError(f"exited with {proc.returncode} first: {out}{err}")
        assert time.monotonic() < deadline, "timed out waiting for the condition"
        time.sleep(0.02)
