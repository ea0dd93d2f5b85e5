"""The one place tests start processes and wait on them: ``manage.py`` (or ``python -m``)
in a child that uses this run's test database and settings, run to the end or in the
background, and a poll that waits for a condition.

Every process is reaped and its pipes closed whatever happens in the test
(``python -X dev -W error::ResourceWarning`` in CI turns a leak into a failure).
A test that starts one belongs under tests/system, where the ``processes``
marker keeps it out of ``make test-fast``; started from anywhere else, it fails
saying so (:func:`_check_caller`).
"""

from __future__ import annotations

import atexit
import functools
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import quote

from django.db import connections

PROJECT_DIR = Path(__file__).resolve().parent.parent.parent
SYSTEM_TESTS = PROJECT_DIR / "tests" / "system"

# Overrides of a child's environment: a value of None removes the variable.
Environment = Mapping[str, str | None]


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


@functools.cache
def child_mail_directory() -> str:
    """Where a child's development mail goes: one directory for the run, removed at exit,
    so no test writes mail into the checkout's var/mail/."""
    directory = tempfile.mkdtemp(prefix="test-mail-")
    atexit.register(shutil.rmtree, directory, ignore_errors=True)
    return directory


def child_environment() -> dict[str, str]:
    """What a child ``manage.py`` needs to use this run's test database and settings module."""
    # Not settings.SETTINGS_MODULE: under pytest-django's ``settings`` fixture it is None.
    # pytest-django puts the module it was given (ini or --ds) in the environment.
    return {
        "DATABASE_URL": database_url(),
        "DJANGO_SETTINGS_MODULE": os.environ.get("DJANGO_SETTINGS_MODULE", "cliproject.settings"),
        "EMAIL_FILE_PATH": child_mail_directory(),
        "PYTHONUNBUFFERED": "1",
    }


def manage_env(env: Environment | None = None) -> dict[str, str]:
    """The environment of a child: this one, the test database and settings, then ``env``."""
    full = {**os.environ, **child_environment()}
    for name, value in (env or {}).items():
        if value is None:
            full.pop(name, None)
        else:
            full[name] = value
    return full


def _command(args: tuple[str, ...], module: str | None) -> list[str]:
    program = ["-m", module] if module else [str(PROJECT_DIR / "manage.py")]
    return [sys.executable, *program, *args]


def _check_caller(args: tuple[str, ...], module: str | None, program: str | None = None) -> None:
    """Fail a test outside tests/system that starts a process, naming where it belongs."""
    current = os.environ.get("PYTEST_CURRENT_TEST")  # "<node id> (setup|call|teardown)"
    if current is None:
        return
    test = current.rsplit(" ", 1)[0]
    if not (PROJECT_DIR / test.split("::", 1)[0]).resolve().is_relative_to(SYSTEM_TESTS):
        program = program or (f"python -m {module}" if module else "manage.py")
        raise AssertionError(
            f"{test} starts a process ({' '.join([program, *args[:1]])} ...): move it to "
            "tests/system/ (marker 'processes', left out of make test-fast), or test it "
            "in-process with call_command / run_command."
        )


@contextmanager
def spawned(
    *args: str, env: Environment | None = None, module: str | None = None
) -> Iterator[subprocess.Popen[str]]:
    """``manage.py *args`` (``python -m module *args``) in the background; killed if still
    running at the end. Read its output with ``communicate()``, which closes the pipes."""
    _check_caller(args, module)
    with _background(_command(args, module), cwd=PROJECT_DIR, env=manage_env(env)) as proc:
        yield proc


@contextmanager
def _background(
    argv: list[str], *, cwd: Path, env: dict[str, str] | None
) -> Iterator[subprocess.Popen[str]]:
    with subprocess.Popen(
        argv,
        cwd=cwd,
        env=env,
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


def completed(
    *args: str,
    env: Environment | None = None,
    module: str | None = None,
    timeout: float = 120,
    **kwargs: Any,
) -> subprocess.CompletedProcess[str]:
    """``manage.py *args`` (``python -m module *args``) run to its end: code, stdout, stderr."""
    _check_caller(args, module)
    return subprocess.run(
        _command(args, module),
        cwd=PROJECT_DIR,
        env=manage_env(env),
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
        **kwargs,
    )


@contextmanager
def spawned_as_cron(
    command: str, *, home: Path, environment: Mapping[str, str] | None = None
) -> Iterator[subprocess.Popen[str]]:
    """A crontab line's ``command`` as cron runs it: ``/bin/sh -c`` in ``home`` with
    nothing of this environment (``env -i``) but ``PATH=/usr/bin:/bin``, ``HOME`` and the
    crontab's own ``NAME=value`` lines. Killed if still running at the end."""
    _check_caller((command,), None, program="/bin/sh -c")
    assigned = [f"{name}={value}" for name, value in (environment or {}).items()]
    argv = ["env", "-i", "PATH=/usr/bin:/bin", f"HOME={home}", *assigned, "/bin/sh", "-c", command]
    with _background(argv, cwd=home, env=None) as proc:
        yield proc


def make(
    target: str,
    *,
    variables: dict[str, str],
    directory: Path = PROJECT_DIR,
    timeout: float = 300,
) -> subprocess.CompletedProcess[str]:
    """``make TARGET NAME=VALUE...`` with the project's Makefile, run in ``directory``
    (the project by default), with this interpreter's venv as ``VENV`` and never
    reinstalled (``-o``): the target is under test, not pip."""
    _check_caller((target,), None, program="make")
    venv = Path(sys.prefix)
    assignments = [f"{name}={value}" for name, value in {"VENV": str(venv), **variables}.items()]
    options = ["--no-print-directory", "-f", str(PROJECT_DIR / "Makefile")]
    return subprocess.run(
        ["make", *options, "-o", f"{venv}/.installed", target, *assignments],
        cwd=directory,
        env=manage_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )


def wait_until(
    condition: Callable[[], bool],
    *procs: subprocess.Popen[str],
    timeout: float = 60,
    interval: float = 0.02,
) -> None:
    """Poll ``condition`` until it holds; fail at once if one of ``procs`` exits meanwhile."""
    deadline = time.monotonic() + timeout
    while not condition():
        for proc in procs:
            if proc.poll() is not None:
                out, err = proc.communicate()
                raise AssertionError(f"exited with {proc.returncode} first: {out}{err}")
        assert time.monotonic() < deadline, "timed out waiting for the condition"
        time.sleep(interval)
