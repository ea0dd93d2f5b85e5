"""The registry of benchmark cases: ``@case`` adds one, :func:`select` picks some.

A case is a function ``body(size, using, **prepared) -> rows_created``. Only the
body is timed. ``setup(size, using) -> dict`` runs before every repetition,
untimed, and its items are passed to the body as keyword arguments: that is
where a case pre-generates rows it must not be charged for.

Cases are grouped; within a group exactly one case is the ``reference`` and
every other case's speed is reported as a ratio of it.

What a body reports is checked: by default against the new rows of a model
(``counts``), or against a callable ``counts(using) -> total`` whose growth over
the body is what the body did (mails sent, say). An ``environment(using)``
context manager is entered once around the repetitions of consecutive cases
that share it (a group's SMTP sink, for instance).

The tables are emptied before every repetition, unless the case has a
``background(size, using)``: rows too many to rebuild per repetition (a big
user table), built once after one emptying, before the warm-up, and untimed.
Such a case's ``teardown(size, using)`` then removes what its body wrote after
each repetition, untimed, so every repetition starts from the background alone.
"""

from __future__ import annotations

import fnmatch
import importlib
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any

from django.db.models import Model

Body = Callable[..., int]
Setup = Callable[[int, str], dict[str, Any]]
# A running total on a database alias, e.g. the welcome mails sent so far.
Counter = Callable[[str], int]
Environment = Callable[[str], AbstractContextManager[object]]
# Untimed work on (size, using) around a case's repetitions: its background, its teardown.
Untimed = Callable[[int, str], None]


@dataclass(frozen=True)
class Case:
    name: str
    group: str
    body: Body
    reference: bool = False
    setup: Setup | None = None
    # Slow cases run on size // size_divisor rows; rows/s stays comparable.
    size_divisor: int = 1
    # What the body's return value is checked against: the model whose new rows
    # it returns (None is the user model), or a Counter whose growth it returns.
    counts: type[Model] | Counter | None = None
    # Entered around all repetitions of consecutive cases sharing it; untimed.
    environment: Environment | None = None
    # Apps the case needs installed (labels or names, for apps.is_installed).
    requires_apps: tuple[str, ...] = ()
    # Built once before the warm-up instead of emptying the tables every repetition.
    background: Untimed | None = None
    # After each repetition: removes the body's rows, leaving the background as it was.
    teardown: Untimed | None = None

    def __post_init__(self) -> None:
        if self.background is not None and self.teardown is None:
            # Without one, each repetition would start from the last one's rows.
            raise ValueError(f"benchmark case {self.name!r} has a background but no teardown.")

    @property
    def description(self) -> str:
        return (self.body.__doc__ or "").strip().split("\n\n")[0].replace("\n", " ")

    def size_for(self, size: int) -> int:
        return max(1, size // self.size_divisor)


class UnknownCase(LookupError):
    pass


_CASES: dict[str, Case] = {}


def case(
    name: str,
    *,
    group: str,
    reference: bool = False,
    setup: Setup | None = None,
    size_divisor: int = 1,
    counts: type[Model] | Counter | None = None,
    environment: Environment | None = None,
    requires_apps: tuple[str, ...] = (),
    background: Untimed | None = None,
    teardown: Untimed | None = None,
) -> Callable[[Body], Body]:
    """Register the decorated function as the benchmark case ``name``."""

    def decorator(body: Body) -> Body:
        if name in _CASES:
            raise ValueError(f"benchmark case {name!r} is registered twice.")
        _CASES[name] = Case(
            name=name,
            group=group,
            body=body,
            reference=reference,
            setup=setup,
            size_divisor=size_divisor,
            counts=counts,
            environment=environment,
            requires_apps=requires_apps,
            background=background,
            teardown=teardown,
        )
        return body

    return decorator


def all_cases() -> list[Case]:
    """Every registered case, in registration order; each group has one reference."""
    importlib.import_module("bench.cases")
    cases = list(_CASES.values())
    for group in dict.fromkeys(c.group for c in cases):
        references = [c.name for c in cases if c.group == group and c.reference]
        if len(references) != 1:
            raise ValueError(
                f"benchmark group {group!r} needs exactly one reference case, has {references}."
            )
    return cases


def select(patterns: Sequence[str]) -> list[Case]:
    """The cases matching any pattern, plus the reference of each group they belong to.

    A pattern that is a case's name selects that case alone; otherwise it matches
    by name prefix, or as a glob on the case's name or group. No patterns selects
    every case. The result is ordered group by group, reference first.
    """
    cases = all_cases()
    chosen = {c.name for c in cases} if not patterns else set()
    for pattern in patterns:
        exact = {c.name for c in cases if c.name == pattern}
        matched = exact or {c.name for c in cases if _matches(c, pattern)}
        if not matched:
            known = ", ".join(c.name for c in cases)
            raise UnknownCase(f"no benchmark case matches {pattern!r}; known cases: {known}.")
        chosen |= matched
    groups = list(dict.fromkeys(c.group for c in cases if c.name in chosen))
    # A ratio needs its reference, so a group's reference always runs with it.
    return [
        c
        for group in groups
        for c in sorted(
            (c for c in cases if c.group == group and (c.name in chosen or c.reference)),
            key=lambda c: not c.reference,
        )
    ]


def _matches(case: Case, pattern: str) -> bool:
    return (
        case.name.startswith(pattern)
        or fnmatch.fnmatchcase(case.name, pattern)
        or fnmatch.fnmatchcase(case.group, pattern)
    )
