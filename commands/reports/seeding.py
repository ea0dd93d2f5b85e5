"""What seed_users and purge_seeded print: a summary in words at -v 1 and up, or JSON.

Never a user's name, e-mail or password: a seeded database may be copied into
bug reports and cron mail.
"""

from __future__ import annotations

from django.core.management.base import CommandError

from commands.clickbridge import ClickCommand
from commands.exitcodes import ExitCode
from commands.render import figures, signal_name, write_json
from seeding.purge import PurgeResult
from seeding.services import SeedResult


def seed_report(
    cmd: ClickCommand, result: SeedResult, *, output_format: str, database: str
) -> None:
    if output_format == "json":
        write_json(
            cmd,
            {
                "database": database,
                **figures(result, "dry_run", "via", "streams", "seed"),
                "run": result.run_number,
                **figures(
                    result,
                    "requested",
                    "created",
                    "resumed_after",
                    "generated",
                    "profiles_created",
                    "run_users_without_profile",
                    "users_without_profile",
                    "welcome_records_pending",
                    "welcome_records_suppressed",
                    "run_users_without_welcome_mail",
                    "users_without_welcome_mail",
                    "welcome_mails_sent",
                    "welcome_mails_pending",
                    "welcome_mails_failed",
                    "mail_destination",
                    "seconds",
                    "users_per_second",
                ),
                "interrupted_by": signal_name(result.stop_signal),
            },
        )
        return
    if cmd.verbosity < 1:
        return
    if result.dry_run:
        of = f" of {result.requested}" if result.generated < result.requested else ""
        cmd.stdout.write(
            f"Dry run: generated and validated {result.generated}{of} user(s) "
            f"(seed {result.seed}) in {result.seconds:.2f} s; nothing was written."
        )
        return
    how = "save()" if result.via == "save" else "bulk insert"
    if result.streams and result.streams > 1:
        how += f" on {result.streams} connections"
    if result.resumed_after:
        cmd.stdout.write(
            f"Resumed seed run {result.run_number}, which an interrupted run left at "
            f"{result.resumed_after} of {result.requested} user(s)."
        )
    cmd.stdout.write(
        f"Created {result.created} user(s) via {how} in {result.seconds:.2f} s "
        f"({result.users_per_second:,.0f} users/s; "
        f"seed run {result.run_number}, seed {result.seed}): "
        f"{result.profiles_created} profile(s) created by receivers, "
        f"{result.run_users_without_profile} of the run's users left without one"
        f"{_in_table(result.users_without_profile, 'a profile')}."
    )
    cmd.stdout.write(_welcome_line(result))
    if result.via == "bulk" and result.created:
        if result.welcome_records_suppressed:
            missing, commands = "no profile", "'manage.py backfill_profiles' to create them"
        else:
            missing = "no profile and no welcome-mail record"
            commands = (
                "'manage.py backfill_profiles' and 'manage.py welcome_mails sync' to create them"
            )
        cmd.stdout.write(
            cmd.style.WARNING(
                f"post_save did not fire for these users, so they have {missing}: run {commands}."
            )
        )
    if result.welcome_mails_pending:
        cmd.stdout.write(
            cmd.style.WARNING(
                f"{result.welcome_mails_pending} of this run's welcome mail(s) are still pending "
                "(the mail server unreachable, or left to a task worker): a task worker or "
                "'manage.py welcome_mails send' delivers them."
            )
        )


def _welcome_line(result: SeedResult) -> str:
    """What the run did about welcome mails; never an address."""
    created = result.welcome_records_pending + result.welcome_records_suppressed
    text = (
        f"Welcome mails: {created} record(s) created, {result.welcome_records_pending} pending "
        f"and {result.welcome_records_suppressed} suppressed"
    )
    if result.welcome_mails_sent is not None:
        text += (
            f"; the run's mails now {result.welcome_mails_sent} sent, "
            f"{result.welcome_mails_pending} pending, {result.welcome_mails_failed} failed; "
            f"mail goes to {result.mail_destination}"
        )
    return (
        f"{text}; {result.run_users_without_welcome_mail} of the run's users left without one"
        f"{_in_table(result.users_without_welcome_mail, 'a record')}."
    )


def _in_table(count: int | None, record: str) -> str:
    """The whole table's figure, when the run counted it (-v 2): a count over every user."""
    return "" if count is None else f"; {count} user(s) in the database without {record}"


def interrupted(result: SeedResult) -> CommandError:
    """The one line, and the exit code (128 + the signal), of a run a signal stopped."""
    signum = result.stop_signal
    assert signum is not None  # only a run a signal stopped is reported as interrupted
    name = signal_name(signum)
    if result.dry_run:
        message = (
            f"interrupted by {name} after generating and validating {result.generated} of "
            f"{result.requested} user(s); dry run, nothing was written."
        )
    else:
        message = (
            f"interrupted by {name} with {result.resumed_after + result.created} of "
            f"{result.requested} user(s) committed; they stay, and the same command with "
            f"--seed {result.seed} resumes the run."
        )
    return CommandError(message, returncode=ExitCode.for_signal(signum))


def purge_report(cmd: ClickCommand, result: PurgeResult, *, output_format: str) -> None:
    if output_format == "json":
        write_json(
            cmd,
            {
                "cancelled": False,
                **figures(
                    result,
                    "dry_run",
                    "runs",
                    "users",
                    "profiles",
                    "welcome_mails",
                    "untracked_runs",
                    "runs_in_progress",
                ),
                "object_by_object": list(result.object_by_object),
            },
        )
        return
    if cmd.verbosity < 1:
        return
    verb = "Would delete" if result.dry_run else "Deleted"
    cmd.stdout.write(
        f"{verb} {result.users} seeded user(s), {result.profiles} profile(s) and "
        f"{result.welcome_mails} welcome-mail record(s) from {result.runs} seed run(s)."
    )
    if result.object_by_object:
        cmd.stdout.write(
            f"{verb} some rows object by object, loading them first as Django's delete "
            f"does, because of: {'; '.join(result.object_by_object)}. Every other table "
            "goes with one DELETE per batch."
        )
    if result.untracked_runs:
        cmd.stdout.write(
            f"Left the users of {result.untracked_runs} seed run(s) alone: those runs predate "
            "the record of which users a run created, and a name alone proves nothing."
        )
    if result.runs_in_progress:
        cmd.stdout.write(
            f"Left {result.runs_in_progress} seed run(s) alone that are still in progress; "
            "run purge_seeded again when they have ended."
        )


def purge_cancelled(cmd: ClickCommand, *, output_format: str) -> None:
    """The "Type 'yes'" prompt was answered otherwise: said at any verbosity, as flush does."""
    if output_format == "json":
        write_json(
            cmd,
            {
                "cancelled": True,
                "dry_run": False,
                "runs": 0,
                "users": 0,
                "profiles": 0,
                "welcome_mails": 0,
            },
        )
        return
    cmd.stdout.write("Purge cancelled; nothing was deleted.")
