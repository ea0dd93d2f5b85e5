"""python -m bench: run benchmark cases side by side on a throwaway database.

Exit codes: 0 done, 1 a case failed, 2 bad usage, 75 the throwaway database
could not be created (server unreachable, no permission): try again later.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from typing import TextIO


def parser_build() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description=(
            "Run benchmark cases against a throwaway copy of the schema of the database "
            "DATABASE_URL points to (never the database itself) and print medians, "
            "ratios to each group's reference case, and peak memory."
        ),
        epilog="Exit codes: 0 done, 1 a case failed, 2 bad usage, 75 database unavailable.",
    )
    parser.add_argument(
        "--size",
        type=_positive,
        default=20000,
        help="rows per repetition (default: %(default)s); slow cases use a fraction of it",
    )
    parser.add_argument(
        "--repeat",
        type=_positive,
        default=5,
        help="timed repetitions per case, after one untimed warm-up (default: %(default)s)",
    )
    parser.add_argument(
        "--case",
        action="append",
        default=[],
        metavar="NAME",
        help=(
            "run the cases matching NAME: a name, a prefix, or a glob on the case name or "
            "group; repeatable; each group's reference case always runs too (default: all)"
        ),
    )
    parser.add_argument(
        "--format",
        dest="output_format",
        choices=["text", "markdown", "json"],
        default="text",
        help="output format (default: %(default)s)",
    )
    parser.add_argument("--list", action="store_true", help="list the selected cases and exit")
    return parser


def _positive(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        number = 0
    if number < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, not {value!r}")
    return number


def main(
    argv: Sequence[str] | None = None, *, stdout: TextIO = sys.stdout, stderr: TextIO = sys.stderr
) -> int:
    parser = parser_build()
    args = parser.parse_args(argv)

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "cliproject.settings")
    # cliproject.settings then installs django-tasks-db, so the throwaway database
    # has its queue table for the task-per-user reference; every case still runs
    # with the ImmediateBackend unless it says otherwise (bench/runner.py).
    os.environ.setdefault("TASKS_BACKEND", "database")
    import django

    django.setup()

    from django.db import DEFAULT_DB_ALIAS

    from bench import registry, report, runner

    try:
        cases = registry.select(args.case)
    except registry.UnknownCase as exc:
        parser.error(str(exc))
    if args.list:
        width = max(len(c.name) for c in cases)
        for c in cases:
            marker = "reference" if c.reference else f"size ÷ {c.size_divisor}"
            stdout.write(f"{c.name.ljust(width)}  {c.group}  {marker:<9}  {c.description}\n")
        return 0

    progress = (
        (lambda message: print(message, file=stderr, flush=True)) if stderr.isatty() else None
    )
    try:
        with runner.throwaway_database(using=DEFAULT_DB_ALIAS) as database:
            environment = report.environment_describe(
                using=DEFAULT_DB_ALIAS, database=database, repeat=args.repeat
            )
            results = runner.run_cases(
                cases,
                size=args.size,
                repeat=args.repeat,
                using=DEFAULT_DB_ALIAS,
                progress=progress,
            )
    except runner.BenchError as exc:
        stderr.write(f"error: {exc}\n")
        return exc.returncode
    stdout.write(report.render(results, environment, args.output_format))
    return 0


if __name__ == "__main__":
    sys.exit(main())
