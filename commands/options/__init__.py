"""Options that several commands share, so each reads and behaves the same everywhere.

The run lock's three (:func:`wait_option`, :func:`if_locked_option`,
:func:`no_lock_option`) come with what they mean once the lock is found held
(:func:`run_locked`), and :func:`refuse_together` refuses options that mean
nothing beside another (exit 2, one line).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator
from contextlib import AbstractContextManager, ExitStack, contextmanager
from typing import TYPE_CHECKING, Any, TypeVar

import click
from click.core import ParameterSource
from django.core.management.base import CommandError

from commands.exitcodes import ExitCode
from commands.metrics import SKIPPED
from commands.render import write_json
from dbtools.errors import UsageError
from dbtools.locks import LockHeld

if TYPE_CHECKING:
    from commands.clickbridge import ClickCommand

F = TypeVar("F", bound=Callable[..., Any])


def format_option(
    *formats: str, help: str = "json: one object on one line, for scripts."
) -> Callable[[F], F]:
    """``--format text|json|...`` (the first is the default), passed as ``output_format``."""
    choices = list(formats or ("text", "json"))
    return click.option(
        "--format",
        "output_format",
        type=click.Choice(choices),
        default=choices[0],
        show_default=True,
        help=help,
    )


def batch_size_option(*, default: int | None, help: str) -> Callable[[F], F]:
    """``--batch-size``: at least 1; a service takes any larger size (it clamps what it binds)."""
    return click.option(
        "--batch-size",
        type=click.IntRange(min=1),
        default=default,
        show_default=default is not None,
        help=help,
    )


def finite(ctx: click.Context, param: click.Parameter, value: float | None) -> float | None:
    """A callback for a number of seconds: click's FloatRange lets ``inf`` and ``nan`` through."""
    if value is not None and not math.isfinite(value):
        raise click.BadParameter(f"{value} is not a number of seconds.")
    return value


def max_seconds_option(*, help: str) -> Callable[[F], F]:
    """``--max-seconds``: a run stops at a batch boundary once this much time has passed."""
    return click.option(
        "--max-seconds",
        type=click.FloatRange(min=0, min_open=True),
        default=None,
        callback=finite,
        help=help,
    )


def wait_option() -> Callable[[F], F]:
    """``--wait SECONDS`` for another run's lock, before ``--if-locked`` applies."""
    return click.option(
        "--wait",
        type=click.FloatRange(min=0),
        default=0,
        show_default=True,
        metavar="SECONDS",
        callback=finite,
        help="Wait this long for another run's lock; if it is still held, --if-locked "
        "says what to do.",
    )


def if_locked_option() -> Callable[[F], F]:
    """``--if-locked fail|skip``: what a run does when another holds its lock (after --wait)."""
    return click.option(
        "--if-locked",
        type=click.Choice(["fail", "skip"]),
        default="fail",
        show_default=True,
        help="When another run still holds the lock (after --wait): fail exits 75 with one "
        "line; skip exits 0, with one line at -v 1 and above and nothing at -v 0 (for "
        "cron: the run in progress does the work).",
    )


# What else exits 75 for a command that takes its run's lock through run_locked(), as its
# --help lists it.
LOCK_HELD = "another run holds the lock (with --if-locked fail, the default)"


@contextmanager
def run_locked(
    cmd: ClickCommand,
    lock: AbstractContextManager[None],
    *,
    held: str,
    wait: float,
    if_locked: str,
    output_format: str,
) -> Iterator[bool]:
    """Hold ``lock`` for the block, which gets True; or, another run holding it once
    ``wait`` has passed, what ``if_locked`` says.

    ``held`` says who holds it ("another backfill_profiles run holds the lock on
    database 'default'"). ``skip``: the block gets False and should end the run,
    which exits 0; one line says so at verbosity 1 and above (nothing at 0), or
    one JSON object. ``fail``: exit 75, one line that says how long it waited and
    what to do. Either way the run's --metrics-file says whether it skipped.
    """
    with ExitStack() as stack:
        try:
            stack.enter_context(lock)
        except LockHeld:
            _lock_held(cmd, held=held, wait=wait, if_locked=if_locked, output_format=output_format)
            yield False
            return
        cmd.run_record.gauges[SKIPPED] = 0
        yield True


def _lock_held(
    cmd: ClickCommand, *, held: str, wait: float, if_locked: str, output_format: str
) -> None:
    waited = f"waited {wait:g} s for it" if wait else ""
    if if_locked == "skip":
        cmd.run_record.gauges[SKIPPED] = 1
        if output_format == "json":
            write_json(cmd, {"skipped": True, "reason": held, "waited_seconds": wait})
        elif cmd.verbosity >= 1:
            cmd.stdout.write(f"skipped: {held}{f' ({waited})' if waited else ''}.")
        return
    if waited:
        advice = f"{waited}; try again later, or pass a longer --wait"
    else:
        advice = "try again later, or pass --wait SECONDS to wait for it"
    raise CommandError(
        f"{held}; {advice} (--if-locked skip: exit 0 while another run works).",
        returncode=ExitCode.TEMPFAIL,
    )


def no_lock_option(*, help: str) -> Callable[[F], F]:
    return click.option("--no-lock", is_flag=True, help=help)


def given(name: str) -> bool:
    """Was the option ``name`` given (on the command line or to call_command), rather than
    left at its default? A flag counts only when on."""
    ctx = click.get_current_context()
    param = _param(ctx, name)
    if isinstance(param, click.Option) and param.is_flag:
        return bool(ctx.params.get(name))
    return ctx.get_parameter_source(name) not in (None, ParameterSource.DEFAULT)


def refuse_together(option: str, others: Iterable[str], *, why: str) -> None:
    """UsageError (exit 2, one line) if ``option`` was given with one of ``others``:
    ``why`` says what the pair cannot mean together."""
    if not given(option):
        return
    for other in others:
        if given(other):
            raise UsageError(f"{_flag(option)} and {_flag(other)} cannot be used together: {why}.")


def _param(ctx: click.Context, name: str) -> click.Parameter:
    return next(param for param in ctx.command.params if param.name == name)


def _flag(name: str) -> str:
    param = _param(click.get_current_context(), name)
    return next((opt for opt in param.opts if opt.startswith("--")), param.opts[0])


def jobs_option(*, help: str) -> Callable[[F], F]:
    """``--jobs N``: 1 to 16 at once, 2 by default (this machine's two cores' worth)."""
    return click.option(
        "--jobs", type=click.IntRange(min=1, max=16), default=2, show_default=True, help=help
    )
