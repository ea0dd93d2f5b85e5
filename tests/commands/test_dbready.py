"""What the server refuses in a batch becomes the exit code that names the setting to fix.

The other database failures are tested with real processes: tests/system/test_dbready.py.
"""

from __future__ import annotations

import pytest
from django.db import connection
from django.test import override_settings

from commands.dbready import command_error_for
from commands.exitcodes import ExitCode
from dbtools.batches import TimeoutRejected, run_batch


@pytest.mark.applies_if(
    connection.vendor == "postgresql", "MySQL/MariaDB cap such values; SQLite has no server"
)
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    "setting", ["DATABASE_LOCK_TIMEOUT_SECONDS", "BATCH_STATEMENT_TIMEOUT_SECONDS"]
)
def test_a_timeout_the_server_refuses_exits_78_naming_the_setting(setting):
    # Beyond what settings.py lets through: what a server with other limits would say.
    with override_settings(**{setting: 10**7}), pytest.raises(TimeoutRejected) as caught:
        run_batch(lambda: None, using="default")
    error = command_error_for(caught.value)
    assert error.returncode == ExitCode.CONFIG
    assert f"set {setting} to a value the server accepts" in str(error)
    assert len(str(error).splitlines()) == 1
