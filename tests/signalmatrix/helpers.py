"""Helpers shared by the signal matrix tests and the command's tests."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
from django.apps import apps
from django.db import connections

from signalmatrix.operations import OPERATIONS
from signalmatrix.services import MatrixResult, OperationResult
from tests.helpers.users import has_field, user_model

GROUP_ROWS = {"groups_add", "groups_remove", "groups_set", "groups_clear"}
# The rows whose operation creates a user: the profile receiver runs for each.
CREATING = (
    "save_insert",
    "create",
    "create_user",
    "get_or_create_created",
    "update_or_create_created",
    "asave",
    "acreate",
)


def row(result: MatrixResult, key: str) -> OperationResult:
    return next(op for op in result.operations if op.key == key)


def sent(op: OperationResult, signal: str) -> list[dict[str, Any]]:
    """The events of ``signal`` in ``op``, each as {"sender": ..., **arguments}."""
    return [{"sender": e.sender, **dict(e.arguments)} for e in op.events if e.signal == signal]


def expected_not_applicable() -> dict[str, str]:
    """Rows the installed user model cannot run, with the reason the matrix must give."""
    if has_field("groups"):
        return {}
    reason = f"{user_model()._meta.label} has no groups: it does not use PermissionsMixin"
    return dict.fromkeys(GROUP_ROWS, reason)


def database_contents(using: str = "default") -> dict[str, Any]:
    """Every row of every table Django knows (and SQLite's AUTOINCREMENT counters)."""
    contents: dict[str, Any] = {
        model._meta.label: list(model._base_manager.using(using).order_by("pk").values_list())
        for model in apps.get_models(include_auto_created=True)
    }
    connection = connections[using]
    if connection.vendor == "sqlite":
        with connection.cursor() as cursor:
            cursor.execute("SELECT name, seq FROM sqlite_sequence ORDER BY name")
            contents["sqlite_sequence"] = cursor.fetchall()
    return contents


@pytest.fixture
def replace_operation():
    """replace_operation(key, body): run ``body`` in place of that operation, for one test."""
    saved = list(OPERATIONS)

    def replace(key, body):
        index = next(i for i, op in enumerate(OPERATIONS) if op.key == key)
        OPERATIONS[index] = dataclasses.replace(OPERATIONS[index], body=body)

    yield replace
    OPERATIONS[:] = saved
