"""Running a command in-process, and the database URL a command cannot reach."""

from __future__ import annotations

import io
from typing import Any

from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connections


def run_command(name: Any, *args: Any, **options: Any) -> tuple[str, str, int]:
    """call_command, returning (stdout, stderr, returncode) as adamchainz's helpers do."""
    out, err = io.StringIO(), io.StringIO()
    try:
        call_command(name, *args, stdout=out, stderr=err, **options)
        code = 0
    except CommandError as exc:
        err.write(str(exc))
        code = exc.returncode
    return out.getvalue(), err.getvalue(), code


def unreachable_database_url() -> str:
    """A DATABASE_URL whose server refuses connections: something a rerun can succeed at.

    SQLite has no server, and a path it cannot open is a setting to fix (exit 78),
    so SQLite runs use a refused PostgreSQL port (psycopg is a dev dependency).
    """
    if connections["default"].vendor == "mysql":
        return "mysql://nobody@127.0.0.1:1/none"
    return "postgres://nobody@127.0.0.1:1/none"
