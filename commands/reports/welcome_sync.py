"""What ``welcome_mails sync`` and ``welcome_mails suppress`` print.

``sync`` is a backfill: its reports are :mod:`commands.reports.backfill`'s,
naming welcome-mail records (:data:`WELCOME_MAILS`) and saying how many were
made pending and how many suppressed.
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import CommandError

from commands.clickbridge import ClickCommand
from commands.render import figures, write_json
from commands.reports import backfill
from profiles.sharding import Shard
from profiles.welcome.sync import SuppressResult, SyncPreview, SyncResult

WELCOME_MAILS = backfill.Rows(
    noun="welcome-mail record",
    command="welcome_mails sync",
    missing_field="users_without_welcome_mail",
    rate_field="records_per_second",
)

SUPPRESS_FIGURES = (
    "joined_from",
    "joined_to",
    "reason",
    "created",
    "suppressed",
    "left_alone",
    "already_suppressed",
    "dry_run",
)


def write_sync_count(
    cmd: ClickCommand, preview: SyncPreview, *, limit: int | None, check: bool, output_format: str
) -> None:
    """The report of ``sync --check`` or ``sync --dry-run``."""
    split = limit is None or limit >= preview.missing.in_shard  # a limit takes them in pk order
    backfill.write_count(
        cmd,
        preview.missing,
        limit=limit,
        check=check,
        output_format=output_format,
        rows=WELCOME_MAILS,
        detail=_split(preview.pending, preview.suppressed) if split and not check else "",
        extra={} if check else _split_figures(preview.pending, preview.suppressed, preview),
    )


def write_sync(cmd: ClickCommand, result: SyncResult, *, shard: Shard, output_format: str) -> None:
    """The report of a sync, finished or stopped."""
    backfill.write_run(
        cmd,
        result,
        shard=shard,
        output_format=output_format,
        rows=WELCOME_MAILS,
        detail=_split(result.pending, result.suppressed),
        extra=_split_figures(result.pending, result.suppressed, result),
    )


def lacking(preview: SyncPreview) -> str:
    return backfill.lacking(preview.missing, WELCOME_MAILS)


def lock_held(database: str, shard: Shard) -> str:
    return backfill.lock_held(database, shard, WELCOME_MAILS)


def interrupted(result: SyncResult) -> CommandError:
    return backfill.interrupted(result, WELCOME_MAILS)


def write_suppress(cmd: ClickCommand, result: SuppressResult, *, output_format: str) -> None:
    """The report of ``suppress``: what it made, turned and left alone."""
    if output_format == "json":
        write_json(cmd, figures(result, *SUPPRESS_FIGURES))
        return
    if cmd.verbosity < 1:
        return
    scope = (
        f"users who joined from {result.joined_from.isoformat()} "
        f"to before {result.joined_to.isoformat()}"
    )
    left = f"; {result.left_alone} sent or being sent left alone" if result.left_alone else ""
    already = (
        f"; {result.already_suppressed} already suppressed kept their reason"
        if result.already_suppressed
        else ""
    )
    if result.dry_run:
        cmd.stdout.write(
            f"Dry run: for {scope}, would create {result.created} suppressed "
            f"welcome-mail record(s) and suppress {result.suppressed} pending or failed "
            f"one(s){left}{already}; nothing was written."
        )
        return
    cmd.stdout.write(
        f"Suppressed the welcome mail of {scope}: {result.created} new record(s), "
        f"{result.suppressed} pending or failed record(s) suppressed{left}{already}."
    )


def _split(pending: int, suppressed: int) -> str:
    return f" ({pending} pending, {suppressed} suppressed)"


def _split_figures(
    pending: int, suppressed: int, source: SyncResult | SyncPreview
) -> dict[str, Any]:
    return {"pending": pending, "suppressed": suppressed, "cutoff": source.cutoff}
