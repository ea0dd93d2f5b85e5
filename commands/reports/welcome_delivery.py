"""What ``welcome_mails send`` and ``retry`` print: one summary (none at verbosity 0), or JSON.

Counts and where the mail went, never a message, an address or a server's reply
(a refusal often quotes the address): those stay in the records.
"""

from __future__ import annotations

from django.core.management.base import CommandError

from commands.clickbridge import ClickCommand
from commands.exitcodes import ExitCode
from commands.render import figures, signal_name, write_json
from profiles.welcome.delivery import SendResult

# The JSON of a run, in this order, then where the mail went and the signal's name.
SEND_FIGURES = (
    "sent",
    "failed",
    "deferred",
    "suppressed",
    "released",
    "batches",
    "jobs",
    "seconds",
    "mails_per_second",
    "stopped",
    "unreachable",
    "misconfigured",
    "pending",
)


def write_send(
    cmd: ClickCommand, result: SendResult, *, destination: str, output_format: str
) -> None:
    """The report of a send run, finished, stopped, or cut short by the mail server
    (unreachable, or refusing our mail settings)."""
    if output_format == "json":
        values = figures(
            result,
            *SEND_FIGURES,
            destination=destination,
            stop_signal=signal_name(result.stop_signal),
        )
        write_json(cmd, values)
        return
    if cmd.verbosity < 1:
        return
    handled = result.sent + result.failed + result.deferred + result.suppressed
    cut_short = result.unreachable is not None or result.misconfigured is not None
    if not handled and not cut_short and result.stopped is None:
        cmd.stdout.write("Nothing to send: no welcome mail is due.")
        return
    if handled or not cut_short:
        cmd.stdout.write(
            f"Sent {result.sent} welcome mail(s) to {destination} in {result.batches} "
            f"batch(es), {result.seconds:.2f} s ({result.mails_per_second:,.0f}/s)."
        )
    others = [
        f"{result.failed} failed (see 'welcome_mails status'; 'retry' sends them again)"
        if result.failed
        else "",
        f"{result.deferred} deferred after a temporary error (retried after a backoff)"
        if result.deferred
        else "",
        f"{result.suppressed} suppressed (the user has no e-mail address)"
        if result.suppressed
        else "",
    ]
    if any(others):
        cmd.stdout.write("; ".join(o for o in others if o) + ".")
    if result.stopped in ("limit", "max_seconds"):
        why = "--limit reached" if result.stopped == "limit" else "--max-seconds passed"
        cmd.stdout.write(f"Stopped ({why}); run again to send the rest.")


def unreachable(result: SendResult) -> CommandError:
    """Exit 75 and one line: the server could not be reached, the records wait."""
    return CommandError(
        f"mail server unreachable ({result.unreachable}): {result.pending} welcome mail(s) "
        "stay pending; the next run retries.",
        returncode=ExitCode.TEMPFAIL,
    )


def misconfigured(result: SendResult) -> CommandError:
    """Exit 78 and one line: the server refused our sender address or login (which
    setting to fix; never its reply), the records wait."""
    return CommandError(
        f"mail settings refused: {result.misconfigured}; {result.pending} welcome mail(s) "
        "stay pending; fix the setting, then run again.",
        returncode=ExitCode.CONFIG,
    )


def lock_held(database: str) -> str:
    """Who holds the lock a run found held (commands.options.run_locked says the rest)."""
    return f"another 'welcome_mails send' run holds the lock on database {database!r}"


def interrupted(result: SendResult) -> CommandError:
    """128 + the signal, and what the run left done."""
    signum = result.stop_signal
    assert signum is not None  # only a run a signal stopped is reported as interrupted
    return CommandError(
        f"interrupted after sending {result.sent} welcome mail(s); the unsent rest of the "
        f"batch in flight ({result.released}) is pending again; run again to finish.",
        returncode=ExitCode.for_signal(signum),
    )


def write_retry(cmd: ClickCommand, retried: int, *, output_format: str) -> None:
    if output_format == "json":
        write_json(cmd, {"retried": retried})
    elif cmd.verbosity >= 1:
        if retried:
            cmd.stdout.write(
                f"Put {retried} failed welcome mail(s) back to pending; "
                "'welcome_mails send' (or a worker) sends them."
            )
        else:
            cmd.stdout.write("Nothing to retry: no welcome mail has failed.")
