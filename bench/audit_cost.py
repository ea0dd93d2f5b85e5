"""python -m bench.audit_cost: what the signal audit costs a loop of create() calls, in turns.

The cases of group ``signal_audit`` (bench/cases/audit.py): the same 10,000
``create()`` calls (at the default ``--size``) with no audit ever started, after
an audit ended, and inside ``audit_signal_skips()``. ``python -m bench --case
signal_audit`` runs each case's repetitions one after the other; on a shared
machine the drift between them can be as large as the 10% in question. Here
the cases take turns: after one warm-up round, each round runs every case
once, so a machine that slows down or speeds up affects them
alike, and each round's ratio is taken to that round's reference.

It prints the bench's table (medians over the rounds, ratio of the medians)
and, per case, the median of the rounds' own ratios: the figure to quote.
Against a throwaway copy of the schema of the database DATABASE_URL names, as
``python -m bench``; exit codes as there.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
from collections.abc import Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, TextIO

if TYPE_CHECKING:  # bench.runner needs Django set up: imported once main() has done it
    from bench.runner import Result

GROUP = "signal_audit"
EN_DASH = "\N{EN DASH}"
TIMES = "\N{MULTIPLICATION SIGN}"


def run(*, size: int, rounds: int, using: str) -> list[Result]:
    """One Result per case of the group, each with one rate per round, reference first.

    One warm-up round first (python -m bench's, which also measures peak memory), then
    ``rounds`` rounds of one timed repetition per case, in the conditions run_cases sets.
    """
    from django.test.utils import override_settings

    from bench import registry, runner

    cases = registry.select([GROUP])
    warmed = runner.run_cases(cases, size=size, repeat=1, using=using)
    rates: dict[str, list[float]] = {case.name: [] for case in cases}
    # The runner's own repetition and settings, so a round is what run_cases times; its
    # warm-up (tracemalloc on) would otherwise cost more than the timed repetition.
    conditions = {"DEBUG": False, **runner._dummy_mail(), **runner._immediate_tasks()}
    with override_settings(**conditions):
        for _ in range(rounds):
            for case in cases:
                rows, seconds, _ = runner._repetition(
                    case, size=case.size_for(size), using=using, trace=False
                )
                rates[case.name].append(rows / max(seconds, 1e-9))
    return [replace(result, rates=tuple(rates[result.case.name])) for result in warmed]


def paired_ratios(results: Sequence[Result]) -> dict[str, list[float]]:
    """Each non-reference case's rows/s ÷ the reference's, round by round."""
    reference = next(r for r in results if r.case.reference)
    return {
        r.case.name: [rate / base for rate, base in zip(r.rates, reference.rates, strict=True)]
        for r in results
        if not r.case.reference
    }


def render_paired(paired: dict[str, list[float]], *, markdown: bool) -> str:
    lines = [
        "",
        "paired: each round's rows/s ÷ the same round's reference; time per create() = 1 ÷ ratio",
    ]
    rows = [
        (
            name,
            f"{statistics.median(values):.3f}{TIMES}",
            f"{min(values):.3f}{EN_DASH}{max(values):.3f}",
            f"{1 / statistics.median(values):.3f}{TIMES}",
        )
        for name, values in paired.items()
    ]
    headers = ("case", "median paired ratio", f"min{EN_DASH}max", "time per create()")
    if markdown:
        lines = [f"- {lines[1]}", ""]
        lines.append("| " + " | ".join(headers) + " |")
        lines.append("|---|---:|---:|---:|")
        lines += ["| " + " | ".join(row) + " |" for row in rows]
    else:
        widths = [max(len(row[i]) for row in [headers, *rows]) for i in range(len(headers))]
        for row in [headers, *rows]:
            cells = [
                cell.ljust(w) if i == 0 else cell.rjust(w)
                for i, (cell, w) in enumerate(zip(row, widths, strict=True))
            ]
            lines.append("  ".join(cells))
    return "\n".join(lines) + "\n"


def main(
    argv: Sequence[str] | None = None, *, stdout: TextIO = sys.stdout, stderr: TextIO = sys.stderr
) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.audit_cost", description=__doc__)
    parser.add_argument("--size", type=int, default=20000, help="as python -m bench's --size")
    parser.add_argument("--rounds", type=int, default=7, help="rounds, each case once a round")
    parser.add_argument(
        "--format", dest="output_format", choices=["text", "markdown", "json"], default="text"
    )
    args = parser.parse_args(argv)
    if args.size < 1 or args.rounds < 1:
        parser.error("--size and --rounds must be positive")

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "cliproject.settings")
    import django

    django.setup()

    from django.db import DEFAULT_DB_ALIAS

    from bench import report, runner

    try:
        with runner.throwaway_database(using=DEFAULT_DB_ALIAS) as database:
            environment = report.environment_describe(
                using=DEFAULT_DB_ALIAS, database=database, repeat=args.rounds
            )
            results = run(size=args.size, rounds=args.rounds, using=DEFAULT_DB_ALIAS)
    except runner.BenchError as exc:
        stderr.write(f"error: {exc}\n")
        return exc.returncode
    paired = paired_ratios(results)
    if args.output_format == "json":
        payload = json.loads(report.render(results, environment, "json"))
        payload["paired_ratios"] = paired
        stdout.write(json.dumps(payload, indent=2) + "\n")
    else:
        markdown = args.output_format == "markdown"
        stdout.write(report.render(results, environment, args.output_format))
        stdout.write(render_paired(paired, markdown=markdown))
    return 0


if __name__ == "__main__":
    sys.exit(main())
