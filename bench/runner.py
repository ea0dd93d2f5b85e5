"""Run cases against a database: a throwaway one from the CLI, the test database in tests."""

from __future__ import annotations

import contextlib
import gc
import itertools
import os
import statistics
import tempfile
import time
import tracemalloc
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import django
from django.apps import apps
from django.contrib.auth import get_user_model
from django.core.management.color import no_style
from django.db import DatabaseError, connections
from django.db.models import Model
from django.test.utils import override_settings

from bench.registry import Case
from commands.exitcodes import ExitCode
from profiles.models import Profile, WelcomeMail
from seeding.models import SeededUser, SeedRun


class BenchError(Exception):
    def __init__(self, message: str, *, returncode: int = 1) -> None:
        super().__init__(message)
        self.returncode = returncode


@dataclass(frozen=True)
class Result:
    case: Case
    backend: str
    size: int
    # rows/s of each timed repetition, in the order they ran.
    rates: tuple[float, ...]
    # tracemalloc peak of the body during the untimed warm-up repetition.
    peak_memory_bytes: int

    @property
    def median(self) -> float:
        return statistics.median(self.rates)

    @property
    def minimum(self) -> float:
        return min(self.rates)

    @property
    def maximum(self) -> float:
        return max(self.rates)


@contextlib.contextmanager
def throwaway_database(*, using: str) -> Iterator[str]:
    """Point ``using`` at a new, migrated database for the duration; yield its name.

    SQLite gets a file in a temporary directory; PostgreSQL and MariaDB/MySQL get
    ``bench_<name>`` on the same server, dropped afterwards (and dropped first if a
    killed run left it behind). Django's test-database machinery does the work, so
    the database ``using`` names is never opened.
    """
    connection = connections[using]
    original_name = connection.settings_dict["NAME"]
    original_test = connection.settings_dict.get("TEST", {})
    with contextlib.ExitStack() as stack:
        if connection.vendor == "sqlite":
            directory = stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-"))
            name = os.path.join(directory, "bench.sqlite3")
        else:
            name = f"bench_{original_name}"
        connection.settings_dict["TEST"] = {**original_test, "NAME": name}
        try:
            connection.creation.create_test_db(verbosity=0, autoclobber=True, serialize=False)
        except DatabaseError as exc:
            first_line = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            raise BenchError(
                f"cannot create the throwaway database {name!r} ({first_line}); check "
                "DATABASE_URL, that the server is running and that its user may create "
                "databases, then try again.",
                returncode=ExitCode.TEMPFAIL,
            ) from exc
        finally:
            # Set again even if migrate failed, so the database is still dropped.
            connection.settings_dict["TEST"] = original_test
        try:
            yield name
        finally:
            if connection.settings_dict["NAME"] != original_name:
                connection.creation.destroy_test_db(original_name, verbosity=0)


def run_cases(
    cases: Sequence[Case],
    *,
    size: int,
    repeat: int,
    using: str,
    progress: Callable[[str], None] | None = None,
) -> list[Result]:
    """Run each case once untimed (warm-up, memory) and ``repeat`` times timed.

    Destructive: empties the user, profile and welcome-mail tables of ``using``
    before every repetition (:func:`tables_clear`), or, for a case with a
    background, once before building it. Use a throwaway database or the test
    database only. The last repetition's rows are left in place (a case with a
    teardown leaves its background).
    """
    # DEBUG off, as in production: no query log. A dummy mail backend: the save
    # cases' welcome e-mails are built and sent, but reach no console or server
    # (the mail cases' environment points mail at an SMTP sink instead). Tasks
    # run at once, in process: the project's default, whatever TASKS_BACKEND says.
    for case in cases:
        missing = [app for app in case.requires_apps if not apps.is_installed(app)]
        if missing:
            raise BenchError(
                f"benchmark case {case.name!r} needs {', '.join(missing)} in INSTALLED_APPS "
                "(python -m bench installs django_tasks_db unless TASKS_BACKEND says otherwise)."
            )
    results = []
    with override_settings(DEBUG=False, **_dummy_mail(), **_immediate_tasks()):
        # Consecutive cases sharing an environment (a group's SMTP sink) enter it once.
        for environment, run in itertools.groupby(cases, key=lambda c: c.environment):
            with environment(using) if environment else contextlib.nullcontext():
                results += [
                    _case_run(
                        case,
                        size=case.size_for(size),
                        repeat=repeat,
                        using=using,
                        progress=progress,
                    )
                    for case in run
                ]
    return results


def _dummy_mail() -> dict[str, Any]:
    backend = "django.core.mail.backends.dummy.EmailBackend"
    if django.VERSION >= (6, 1):  # MAILERS replaces EMAIL_BACKEND there
        return {"MAILERS": {"default": {"BACKEND": backend}}}
    return {"EMAIL_BACKEND": backend}


def _immediate_tasks() -> dict[str, Any]:
    package = "django.tasks" if django.VERSION >= (6, 0) else "django_tasks"
    return {"TASKS": {"default": {"BACKEND": f"{package}.backends.immediate.ImmediateBackend"}}}


def _case_run(
    case: Case,
    *,
    size: int,
    repeat: int,
    using: str,
    progress: Callable[[str], None] | None,
) -> Result:
    if progress:
        progress(f"{case.name}: {size} rows, 1 warm-up + {repeat} timed repetition(s)")
    if case.background:
        # Once for all repetitions: each one's teardown leaves it as it was built.
        tables_clear(using=using)
        case.background(size, using)
    _, _, peak = _repetition(case, size=size, using=using, trace=True)
    rates = []
    for _ in range(repeat):
        rows, seconds, _ = _repetition(case, size=size, using=using, trace=False)
        rates.append(rows / max(seconds, 1e-9))
    return Result(
        case=case,
        backend=connections[using].display_name.lower(),
        size=size,
        rates=tuple(rates),
        peak_memory_bytes=peak,
    )


def _repetition(case: Case, *, size: int, using: str, trace: bool) -> tuple[int, float, int]:
    """Clear (or keep the background), set up, then time the body alone; check its rows,
    tear down; return (rows, seconds, peak bytes)."""
    if case.background is None:
        tables_clear(using=using)
    prepared = case.setup(size, using) if case.setup else {}
    count, counted = _counter(case)
    before = count(using)
    gc.collect()
    peak = 0
    if trace:
        tracing_already = tracemalloc.is_tracing()
        if not tracing_already:
            tracemalloc.start()
        tracemalloc.reset_peak()
        baseline = tracemalloc.get_traced_memory()[0]
    try:
        start = time.perf_counter()
        rows = case.body(size, using, **prepared)
        seconds = time.perf_counter() - start
    finally:
        if trace:
            peak = tracemalloc.get_traced_memory()[1] - baseline
            if not tracing_already:
                tracemalloc.stop()
    written = count(using) - before
    if rows <= 0 or rows != written:
        raise BenchError(
            f"benchmark case {case.name!r} reported {rows} row(s) created, but "
            f"{written} {counted} were written."
        )
    if case.teardown:
        case.teardown(size, using)
    return rows, seconds, peak


def _counter(case: Case) -> tuple[Callable[[str], int], str]:
    """What the body's rows are checked against, and what to call it in an error."""
    counts = case.counts
    if counts is None or isinstance(counts, type):
        model: type[Model] = counts or get_user_model()

        def rows(using: str) -> int:
            return model._default_manager.db_manager(using).count()

        return rows, f"{model._meta.verbose_name_plural} row(s)"
    label = (counts.__doc__ or counts.__name__).strip().split("\n")[0].rstrip(".")
    return counts, f"({label})"


def tables_clear(*, using: str) -> None:
    """Empty the user, profile, welcome-mail and seeding tables (and django-tasks-db's
    queue, when installed) and reset their sequences, as ``flush`` does.

    All of them: MySQL truncates with foreign-key checks off, so a SeededUser or
    WelcomeMail row left behind would name a reused user id.
    """
    connection = connections[using]
    user_model = get_user_model()
    tables = [
        Profile._meta.db_table,
        WelcomeMail._meta.db_table,
        SeededUser._meta.db_table,
        SeedRun._meta.db_table,
        user_model._meta.db_table,
        *(f.m2m_db_table() for f in user_model._meta.many_to_many),
    ]
    if apps.is_installed("django_tasks_db"):
        queue = apps.get_model("django_tasks_database", "DBTaskResult")  # type: ignore[misc]
        tables.append(queue._meta.db_table)
    connection.ops.execute_sql_flush(
        connection.ops.sql_flush(no_style(), tables, reset_sequences=True, allow_cascade=True)
    )
