"""manage.py welcome_mails: reconcile, deliver, suppress, retry and report welcome mails."""

from __future__ import annotations

import functools
from datetime import datetime, timedelta

import click
from django.core.management.base import CommandError

from commands.clickbridge import ClickCommand, django_group, subcommand
from commands.durations import EXAMPLES, duration_callback
from commands.exitcodes import INTERRUPTIBLE, ON_A_DATABASE, ExitCode
from commands.options import (
    LOCK_HELD,
    batch_size_option,
    format_option,
    if_locked_option,
    jobs_option,
    max_seconds_option,
    no_lock_option,
    run_locked,
    wait_option,
)
from commands.options.backfill import (
    CHECK_IGNORES,
    backfill_options,
    check_epilog,
    datetime_callback,
    recorded_if_lock_held,
    refuse_conflicts,
    refuse_no_lock_conflicts,
    run_label,
)
from commands.progress import progress
from commands.reports import welcome_delivery as delivery_report
from commands.reports import welcome_sync as sync_report
from commands.reports.welcome_status import check_problem, write_status
from dbtools.stopping import stop_on_signals
from profiles.backfill import default_batch_size
from profiles.selectors import MissingRecords, users_without_welcome_mail
from profiles.sharding import Shard
from profiles.welcome.delivery import send_lock, welcome_mails_retry, welcome_mails_send
from profiles.welcome.message import mail_destination
from profiles.welcome.selectors import welcome_mail_counts
from profiles.welcome.sync import (
    sync_lock,
    sync_preview,
    welcome_mails_suppress,
    welcome_mails_sync,
)

group = django_group(
    "welcome_mails",
    exit_codes=INTERRUPTIBLE,
    help="""Reconcile, deliver and report the welcome mail of every user.

    Each user has one welcome-mail record: pending, sending (leased to a
    sender), sent, suppressed (never to be sent, with the reason) or failed.
    The post_save receiver writes it with the user; 'sync' creates the records
    of users no receiver saw (bulk inserts, raw SQL, COPY); 'send' delivers the
    pending ones, from cron or with a task worker. See docs/receivers.md.
    """,
)

# --- status (counts per state; --check for monitoring) ---

STATUS_MAX_AGE = duration_callback(longest=timedelta(days=365))


@subcommand(
    group,
    name="status",
    database=True,
    metrics=True,
    exit_codes=ON_A_DATABASE,
    failed="with --check: a mail waited longer than --max-age, or failed",
)
@format_option(help="Output format; json is one object on one line.")
@click.option(
    "--check",
    is_flag=True,
    help="Exit 1, with one line saying why, when a pending record is older than "
    "--max-age or a record has failed; for monitoring (silent at -v 0 when all is well).",
)
@click.option(
    "--max-age",
    "max_age",
    metavar="DURATION",
    default="1h",
    show_default=True,
    callback=STATUS_MAX_AGE,
    help=f"With --check: the longest a record may stay pending ({EXAMPLES}).",
)
def status(
    cmd: ClickCommand, *, database: str, output_format: str, check: bool, max_age: timedelta
) -> None:
    """Count the welcome-mail records per state, and the users without one.

    Also how long the oldest pending record (pending, or leased to a sender)
    has waited. Users without a record were made by bulk inserts, raw SQL,
    COPY or loaddata: 'sync' creates their records.
    """
    if check:  # a series of its own: its exit 1 is not a status run's outcome
        cmd.run_record.command = "welcome_mails status --check"
    counts = welcome_mail_counts(using=database)
    age = counts.oldest_pending_age()
    # What --check judges, for alerts on the figures rather than on its exit code.
    cmd.run_record.gauges.update(
        {
            "users_without_welcome_mail": counts.without_record,
            "welcome_mails_pending": counts.pending,
            "welcome_mails_sending": counts.sending,
            "welcome_mails_failed": counts.failed,
            "welcome_mail_oldest_pending_age_seconds": 0 if age is None else age.total_seconds(),
        }
    )
    write_status(
        cmd,
        counts,
        database=database,
        output_format=output_format,
        max_age=max_age if check else None,
    )
    problem = check_problem(counts, max_age=max_age) if check else None
    if problem is not None:
        raise CommandError(problem, returncode=ExitCode.FAILED)


# --- sync (the set-based reconcile) and suppress (a range, explicitly) ---


@subcommand(
    group,
    name="sync",
    database=True,
    metrics=True,
    # Without writing, every user lacking a record counts, whatever the cutoff.
    validate=functools.partial(refuse_conflicts, check_ignores=(*CHECK_IGNORES, "joined_since")),
    epilog=check_epilog(a_row="a welcome-mail record", command="welcome_mails sync"),
    exit_codes=INTERRUPTIBLE,
    failed="with --check: users lack a welcome-mail record",
    tempfail=LOCK_HELD,
)
@backfill_options(
    rows="welcome-mail records",
    a_row="a welcome-mail record",
    run="sync",
    statements="one statement (two with a cutoff)",
)
@click.option(
    "--joined-since",
    metavar="DATE",
    callback=datetime_callback,
    help="The rollout cutoff of this run, instead of WELCOME_MAIL_SINCE: users who joined "
    "before it get a suppressed record. An ISO date or date-time; without an offset, UTC.",
)
def sync_(
    cmd: ClickCommand,
    *,
    batch_size: int | None,
    limit: int | None,
    dry_run: bool,
    check: bool,
    max_seconds: float | None,
    shard: Shard,
    wait: float,
    if_locked: str,
    jobs: int,
    no_lock: bool,
    output_format: str,
    joined_since: datetime | None,
    database: str,
) -> None:
    """Create a welcome-mail record for every user that has none.

    Users made by bulk_create, raw SQL or COPY have no record. This walks the
    user table as backfill_profiles does (batches in primary-key order, one
    set-based insert per batch, the same lock, --shard and --jobs): pending
    records for users who joined at or after the cutoff (--joined-since, else
    WELCOME_MAIL_SINCE), suppressed ones for the others, so a first run never
    mails the historic users. It creates records only and sends nothing:
    'welcome_mails send' (or a task worker) delivers the pending ones.
    """
    cmd.run_record.command = run_label(
        "welcome_mails sync", check=check, dry_run=dry_run, shard=shard
    )
    cmd.run_record.rows = 0
    if dry_run:
        preview = sync_preview(using=database, shard=shard, joined_since=joined_since)
        sync_report.write_sync_count(
            cmd, preview, limit=limit, check=False, output_format=output_format
        )
        _record_missing(cmd, database, preview.missing)
        return
    lock = sync_lock(using=database, shard=shard, wait=wait, enabled=not no_lock)
    held = sync_report.lock_held(database, shard)
    with (
        recorded_if_lock_held(lambda: _record_missing(cmd, database)),
        run_locked(
            cmd, lock, held=held, wait=wait, if_locked=if_locked, output_format=output_format
        ) as running,
    ):
        if not running:
            _record_missing(cmd, database)
            return
        if check:
            preview = sync_preview(using=database, shard=shard)
        else:
            with stop_on_signals() as stop, progress(cmd, label="Syncing") as advance:
                result = welcome_mails_sync(
                    using=database,
                    batch_size=batch_size or default_batch_size(using=database),
                    shard=shard,
                    limit=limit,
                    max_seconds=max_seconds,
                    stop=stop,
                    on_batch=advance,
                    jobs=jobs,
                    joined_since=joined_since,
                )
    if check:
        sync_report.write_sync_count(
            cmd, preview, limit=None, check=True, output_format=output_format
        )
        _record_missing(cmd, database, preview.missing)
        if preview.missing.in_shard:
            raise CommandError(sync_report.lacking(preview), returncode=ExitCode.FAILED)
        return
    cmd.run_record.rows = result.created
    sync_report.write_sync(cmd, result, shard=shard, output_format=output_format)
    _record_missing(cmd, database, result.missing)
    if result.stop_signal is not None:
        raise sync_report.interrupted(result)


def _record_missing(
    cmd: ClickCommand, database: str, missing: MissingRecords | None = None
) -> None:
    """The --metrics-file's users_without_welcome_mail (the whole table's): counted only
    for a file, unless the run already knows it."""
    if missing is None and cmd.metrics_wanted:
        missing = users_without_welcome_mail(using=database)
    if missing is not None:
        cmd.run_record.gauges["users_without_welcome_mail"] = missing.in_table


@subcommand(group, name="suppress", database=True, exit_codes=ON_A_DATABASE)
@click.option(
    "--joined-between",
    nargs=2,
    required=True,
    metavar="FROM TO",
    callback=datetime_callback,
    help="The users who joined at or after FROM and before TO (ISO dates or date-times; "
    "without an offset, UTC).",
)
@click.option(
    "--reason",
    required=True,
    help="Why they get no welcome mail, kept with each record (e.g. 'imported from the old shop').",
)
@click.option("--dry-run", is_flag=True, help="Count what would change; write nothing.")
@format_option(help="json: one object with the figures.")
def suppress_(
    cmd: ClickCommand,
    *,
    joined_between: tuple[datetime, datetime],
    reason: str,
    dry_run: bool,
    output_format: str,
    database: str,
) -> None:
    """Suppress the welcome mail of every user who joined in a range.

    Users of the range without a record get a suppressed one; pending and
    failed records become suppressed, with --reason. A mail already sent, or
    being sent by a sender now, is left alone (and counted). One transaction:
    the whole range or nothing. Nothing is mailed.
    """
    joined_from, joined_to = joined_between
    result = welcome_mails_suppress(
        using=database,
        joined_from=joined_from,
        joined_to=joined_to,
        reason=reason,
        dry_run=dry_run,
    )
    sync_report.write_suppress(cmd, result, output_format=output_format)


# --- send (deliver pending records) and retry (failed records back to pending) ---


@subcommand(
    group,
    name="send",
    database=True,
    metrics=True,
    validate=refuse_no_lock_conflicts,
    exit_codes=INTERRUPTIBLE,
    tempfail=f"{LOCK_HELD}; the mail server is unreachable",
)
@batch_size_option(
    default=100,
    help="Records per batch: one claim (a short transaction) and one mail connection each.",
)
@click.option(
    "--limit",
    type=click.IntRange(min=1),
    default=None,
    help="Stop after handling this many records.",
)
@max_seconds_option(
    help="Stop after the batch in flight once this many seconds have passed; the next run "
    "sends the rest."
)
@wait_option()
@if_locked_option()
@no_lock_option(
    help="Run without the lock (correctness never depends on it: each record is leased); "
    "--wait and --if-locked then mean nothing."
)
@jobs_option(
    help="Senders at once, each claiming its own batches over its own database and mail "
    "connections. SQLite (one writer) always runs one."
)
@format_option(help="json: one object with the figures.")
def send_(
    cmd: ClickCommand,
    *,
    batch_size: int,
    limit: int | None,
    max_seconds: float | None,
    wait: float,
    if_locked: str,
    no_lock: bool,
    jobs: int,
    output_format: str,
    database: str,
) -> None:
    """Send the welcome mails that are due, in batches.

    Each batch leases its records (pending ones, and those a killed sender left
    leased once the lease ran out), sends them over one mail connection and
    marks each one sent as the server accepts it. A temporary error retries
    the record after a backoff, up to WELCOME_MAIL_MAX_ATTEMPTS, then it is
    failed, as it is at once on a permanent error ('retry' revives it); a
    failed record does not fail the run ('status --check' reports it). An
    unreachable mail server stops the run with exit 75, its records pending;
    one that refuses our sender address (DEFAULT_FROM_EMAIL) or login stops it
    with exit 78, its records pending. Safe from cron: one run per database
    holds a lock; another exits 75, or 0 with --if-locked skip.
    """
    cmd.run_record.rows = 0
    lock = send_lock(using=database, wait=wait, enabled=not no_lock)
    held = delivery_report.lock_held(database)
    with run_locked(
        cmd, lock, held=held, wait=wait, if_locked=if_locked, output_format=output_format
    ) as running:
        if not running:
            return
        with stop_on_signals() as stop, progress(cmd, label="Sending") as advance:
            result = welcome_mails_send(
                using=database,
                batch_size=batch_size,
                limit=limit,
                max_seconds=max_seconds,
                stop=stop,
                on_batch=advance,
                jobs=jobs,
            )
    cmd.run_record.rows = result.sent
    delivery_report.write_send(
        cmd, result, destination=mail_destination(), output_format=output_format
    )
    if result.unreachable is not None:
        raise delivery_report.unreachable(result)
    if result.misconfigured is not None:
        raise delivery_report.misconfigured(result)
    if result.stop_signal is not None:
        raise delivery_report.interrupted(result)


@subcommand(group, name="retry", database=True, exit_codes=ON_A_DATABASE)
@format_option(help="json: one object with the figures.")
def retry_(cmd: ClickCommand, *, output_format: str, database: str) -> None:
    """Put every failed welcome mail back to pending, due now, its attempts reset.

    Fix the cause first (the reason 'status' shows); the next 'send' run, or a
    worker, sends them.
    """
    delivery_report.write_retry(
        cmd, welcome_mails_retry(using=database), output_format=output_format
    )


Command = group.django_command_class
