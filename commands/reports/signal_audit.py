"""What ``signal_audit`` prints after the command it ran: text, Markdown or JSON, from one result.

One line (or table row) per call site: the model, the operation, the rows,
the receivers that did not run, and ``file:line``; an expected skip carries
its reason. The closing line counts the writes; when it counts none, it says
where to read what the detector cannot see, since "none seen" is all it knows.
"""

from __future__ import annotations

from typing import IO, Any, TextIO, cast

from django.core.management.base import BaseCommand

from commands.clickbridge import ClickCommand
from commands.render import figures, write_json
from signalaudit import AuditReport, SiteSummary
from signalaudit.commands import CommandAudit
from signalaudit.report import rows_text

BLIND_SPOTS = "docs/audit.md lists what the detector cannot see"
NO_SITE = "(no call site outside Django)"
COLUMNS = ("call site", "model", "operation", "statements", "rows", "receivers skipped", "expected")


def write_audit(
    cmd: ClickCommand, audit: CommandAudit, *, output_format: str, output: IO[str] | None
) -> None:
    """The report on stdout, or in the ``--output`` file. At -v 0 only what was asked
    for by name: json or markdown, or a file (which gets the -v 1 report)."""
    to: BaseCommand = cmd
    verbosity = cmd.verbosity
    if output is not None:
        # write_json writes to a command's stdout: the file gets a command of its own.
        to, verbosity = BaseCommand(stdout=cast(TextIO, output), no_color=True), max(verbosity, 1)
    elif output_format == "text" and verbosity < 1:
        return
    if output_format == "json":
        write_json(to, audit_json(audit, verbosity=verbosity))
    elif output_format == "markdown":
        to.stdout.write(audit_markdown(audit, verbosity=verbosity))
    else:
        for line in audit_text(audit, verbosity=verbosity):
            to.stdout.write(line)


def skipped(report: AuditReport) -> str:
    """``N write(s) at M call site(s) skipped receivers``: the unexpected ones."""
    sites = {s.site for s in report.sites() if s.expected is None}
    return f"{len(report.unexpected)} write(s) at {len(sites)} call site(s) skipped receivers"


def summary(audit: CommandAudit) -> str:
    report = audit.report
    failed = f" ({audit.command} exited {audit.returncode})" if audit.returncode else ""
    if not report.skips:
        return f"signal_audit: no write the detector saw skipped receivers{failed}; {BLIND_SPOTS}."
    line = f"signal_audit: {skipped(report)}; {len(report.expected)} expected{failed}"
    return f"{line}." if report.unexpected else f"{line}; {BLIND_SPOTS}."


def audit_text(audit: CommandAudit, *, verbosity: int) -> list[str]:
    """Aligned lines, one per call site (each statement below it at -v 2), then the summary."""
    sites = audit.report.sites()
    rows = [
        (s.model, s.operation, rows_text(s.rows), ", ".join(s.receiver_names), _where(s))
        for s in sites
    ]
    widths = [max((len(row[i]) for row in rows), default=0) for i in range(3)]
    lines = []
    for site, row in zip(sites, rows, strict=True):
        line = "  ".join([*map(str.ljust, row[:3], widths), *row[3:]])
        lines.append(line if site.expected is None else f"{line}  expected: {site.expected}")
        if verbosity >= 2:
            lines += [
                f"    {skip.database}: {skip.statement} ({rows_text(skip.rows)})"
                for skip in site.skips
            ]
    return [*lines, summary(audit)]


def audit_markdown(audit: CommandAudit, *, verbosity: int) -> str:
    """A table of the call sites (at -v 2 with their statements), then the summary."""
    columns = [*COLUMNS, "SQL"] if verbosity >= 2 else list(COLUMNS)
    table = []
    for site in audit.report.sites():
        cells = [
            f"`{_where(site)}`",
            f"`{site.model}`",
            site.operation,
            str(site.statements),
            "?" if site.rows is None else str(site.rows),
            ", ".join(f"`{name}`" for name in site.receiver_names),
            site.expected or "",
        ]
        if verbosity >= 2:
            skips = site.skips
            cells.append("<br>".join(f"{s.database}: `{s.statement}`" for s in skips))
        table.append(cells)
    if not table:
        return summary(audit)
    lines = [_markdown_row(columns), _markdown_row(["---"] * len(columns))]
    lines += [_markdown_row(cells) for cells in table]
    return "\n".join([*lines, "", summary(audit)])


def audit_json(audit: CommandAudit, *, verbosity: int) -> dict[str, Any]:
    """One object: the command, its exit code, the counts, the sites (-v 2: their statements)."""
    report = audit.report
    sites = report.sites()
    return {
        "command": audit.command,
        "args": list(audit.args),
        "exit_code": audit.returncode,
        "unexpected": len(report.unexpected),
        "unexpected_sites": len({s.site for s in sites if s.expected is None}),
        "expected": len(report.expected),
        "expected_sites": len({s.site for s in sites if s.expected is not None}),
        "sites": [_site_json(report, site, verbosity=verbosity) for site in sites],
    }


def _site_json(report: AuditReport, site: SiteSummary, *, verbosity: int) -> dict[str, Any]:
    where = site.site
    values = {
        "file": where.path if where else None,
        "line": where.lineno if where else None,
        "function": where.function if where else None,
        **figures(site, "model", "operation", "statements", "rows"),
        "receivers": [{"name": r.name, "signal": r.signal} for r in site.receivers],
        "expected": site.expected,
    }
    if verbosity >= 2:
        values["skips"] = [
            figures(skip, "database", "write", "rows", "statement") for skip in site.skips
        ]
    return values


def _where(site: SiteSummary) -> str:
    return NO_SITE if site.site is None else f"{site.site} ({site.site.function})"


def _markdown_row(cells: list[str]) -> str:
    return "| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |"
