"""Options that several commands share, so each reads and behaves the same everywhere."""

from __future__ import annotations

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


# The largest batch every backend can bind as a LIMIT or OFFSET (a signed 64-bit integer).
MAX_BATCH_SIZE = 2**63 - 1


def batch_size_option(*, default: int | None, help: str) -> Callable[[F], F]:
    return click.option(
        "--batch-size",
        type=click.IntRange(min=1, max=MAX_BATCH_SIZE),
        default=default,
        show_default=default is not None,
        help=help,
    )
