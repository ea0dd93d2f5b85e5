"""manage.py signal_matrix in real processes: a run changes no row, obeys a switch another
process set and prints JSON under any user model (a database it cannot use: test_dbready.py)."""

from __future__ import annotations

import json

import pytest

from tests.helpers.users import user_model
from tests.signalmatrix.helpers import database_contents, expected_not_applicable

PROFILE = "profiles.receivers.create_profile"


@pytest.mark.django_db(transaction=True)
def test_a_real_run_in_another_process_leaves_every_row_as_it_was(manage):
    from django.contrib.auth import get_user_model

    get_user_model().objects.create_user("kept")
    before = database_contents()
    result = manage("signal_matrix", "--format", "markdown")
    assert result.returncode == 0, result.stderr
    assert "| `manage.py loaddata` (a fixture with one user) | raw=True |" in result.stdout
    assert database_contents() == before


@pytest.mark.django_db(transaction=True)
def test_a_receiver_switched_off_for_every_process_is_shown_and_measured(manage):
    switched = manage("receivers", "off", PROFILE, "--reason", "import")
    assert switched.returncode == 0, switched.stderr
    result = manage("signal_matrix")
    assert result.returncode == 0, result.stderr
    assert f"{PROFILE} (post_save, auth.User): switched off" in result.stdout
    save = next(line for line in result.stdout.splitlines() if line.startswith("user.save() (i"))
    assert save.split()[2:] == ["pre_save;", "post_save", "created=True", "✗"]


@pytest.mark.any_user_model
@pytest.mark.django_db(transaction=True)
def test_a_real_run_prints_json_without_errors(manage):
    result = manage("signal_matrix", "--format", "json")
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    data = json.loads(result.stdout)
    assert data["user_model"] == user_model()._meta.label
    ops = {op["key"]: op for op in data["operations"]}
    assert [key for key, op in ops.items() if op["error"]] == []
    assert {key: op["unsupported"] for key, op in ops.items() if op["unsupported"]} == (
        expected_not_applicable()
    )
    for key in ("save_insert", "create", "create_user"):
        assert ops[key]["profile_created"] is True, key
