"""Shared pieces of the signal audit's tests: extra receivers, the line of a statement,
and what the detector should say about ``seed_users --via bulk`` (read from the source).

The project connects two ``post_save`` receivers to the user model; the
fixtures here add a ``pre_delete`` receiver on it and an ``m2m_changed``
receiver on ``user.groups.through``, each with a ``dispatch_uid``, and
disconnect them after the test (import ``delete_receiver_fixture`` or
``m2m_receiver_fixture`` into a test module to ask for them by their names).
Each fixture gives a :class:`Listening`: the receiver as a skip names it, and
the calls it got (so a test can show the path really sent the signal, not
only that no skip was found).
"""

from __future__ import annotations

import inspect
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from django.db import connections
from django.db.models.signals import m2m_changed, pre_delete

from signalaudit.report import CallSite, SkippedReceiver
from signalmatrix.users import groups_field
from tests.helpers.processes import PROJECT_DIR
from tests.helpers.users import user_model

# The project's receivers of the user model, as `receivers list` names them.
PROJECT_SAVE_RECEIVERS = (
    SkippedReceiver("profiles.receivers.create_profile", "post_save"),
    SkippedReceiver("profiles.receivers.send_welcome_email", "post_save"),
)
SKIPPED = tuple(receiver.name for receiver in PROJECT_SAVE_RECEIVERS)

INSERTS = PROJECT_DIR / "seeding" / "inserts.py"

_calls: dict[str, list[dict[str, Any]]] = {"pre_delete": [], "m2m_changed": []}


def user_deleted(sender: Any, **kwargs: Any) -> None:
    _calls["pre_delete"].append(kwargs)


def groups_changed(sender: Any, **kwargs: Any) -> None:
    _calls["m2m_changed"].append(kwargs)


@dataclass
class Listening:
    receiver: SkippedReceiver
    calls: list[dict[str, Any]] = field(default_factory=list)


@pytest.fixture(name="delete_receiver")
def delete_receiver_fixture() -> Iterator[Listening]:
    """A pre_delete receiver of the user model, for this test."""
    model = user_model()
    uid = "tests.helpers.audit.user_deleted"
    calls = _calls["pre_delete"]
    calls.clear()
    pre_delete.connect(user_deleted, sender=model, dispatch_uid=uid)
    try:
        yield Listening(SkippedReceiver(f"{__name__}.user_deleted", "pre_delete"), calls)
    finally:
        pre_delete.disconnect(sender=model, dispatch_uid=uid)


@pytest.fixture(name="m2m_receiver")
def m2m_receiver_fixture() -> Iterator[Listening]:
    """An m2m_changed receiver of ``user.groups.through``, for this test (models with groups)."""
    groups = groups_field(user_model())
    assert groups is not None, "only for user models with groups (applies_if has_field('groups'))"
    through = groups.remote_field.through
    uid = "tests.helpers.audit.groups_changed"
    calls = _calls["m2m_changed"]
    calls.clear()
    m2m_changed.connect(groups_changed, sender=through, dispatch_uid=uid)
    try:
        yield Listening(SkippedReceiver(f"{__name__}.groups_changed", "m2m_changed"), calls)
    finally:
        m2m_changed.disconnect(sender=through, dispatch_uid=uid)


def next_line() -> int:
    """The line after the caller's: where the statement under test is."""
    frame = inspect.currentframe()
    assert frame is not None and frame.f_back is not None
    return frame.f_back.f_lineno + 1


def at(line: int) -> CallSite:
    """The call site of the caller's statement on ``line``: its file and function, that line."""
    frame = inspect.currentframe()
    assert frame is not None and frame.f_back is not None
    code = frame.f_back.f_code
    return CallSite(code.co_filename, line, code.co_name)


def bulk_insert_site(alias: str = "default") -> CallSite:
    """The line that inserts a bulk batch's users on this backend: the executemany on
    MariaDB; on PostgreSQL and SQLite the report_write after its COPY or its multi-row
    INSERTs on sqlite3's own connection (which Django's cursor never sees)."""
    reported = connections[alias].vendor in ("postgresql", "sqlite")
    marker = "report_write(" if reported else "cursor.executemany("
    lines = INSERTS.read_text().splitlines()
    [number] = [i for i, line in enumerate(lines, start=1) if marker in line]
    return CallSite(filename=str(INSERTS), lineno=number, function="bulk_insert_batch")


def bulk_insert_operation(alias: str = "default") -> str:
    """How the report names that write."""
    return {"postgresql": "COPY", "sqlite": "raw SQL (multi-row INSERT)"}.get(
        connections[alias].vendor, "raw SQL (executemany)"
    )


def bulk_insert_statement(alias: str = "default") -> str:
    """How that write's statement begins in the report: a write reported by
    report_write (COPY, SQLite's multi-row INSERT) shows its operation instead."""
    operation = bulk_insert_operation(alias)
    return "INSERT INTO " if operation == "raw SQL (executemany)" else operation
