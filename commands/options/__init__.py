"""Options that several commands share, so each reads and behaves the same everywhere."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, TypeVar

import click

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
    """``--wait SECONDS`` for another run's lock, instead of exiting 75 at once."""
    return click.option(
        "--wait",
        type=click.FloatRange(min=0),
        default=0,
        show_default=True,
        metavar="SECONDS",
        callback=finite,
        help="Wait this long for another run's lock instead of exiting 75 at once.",
    )


def no_lock_option(*, help: str) -> Callable[[F], F]:
    return click.option("--no-lock", is_flag=True, help=help)


def jobs_option(*, help: str) -> Callable[[F], F]:
    """``--jobs N``: 1 to 16 at once, 2 by default (this machine's two cores' worth)."""
    return click.option(
        "--jobs", type=click.IntRange(min=1, max=16), default=2, show_default=True, help=help
    )
