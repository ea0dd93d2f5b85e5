"""python -m bench and python -m bench.switch_cost in real processes: the bench against a
throwaway copy of the test database, the switch cost on a database of its own (smoke tests,
never timed)."""

from __future__ import annotations

import json
import os
import subprocess

import pytest
from django.contrib.auth import get_user_model
from django.db import connection

from bench import registry
from tests.helpers.commands import unreachable_database_url
from tests.helpers.processes import completed

User = get_user_model()


def bench(
    *args: str, env: dict[str, str] | None = None, module: str = "bench"
) -> subprocess.CompletedProcess[str]:
    # The test database's URL; no DJANGO_SETTINGS_MODULE: python -m bench defaults it.
    return completed(*args, module=module, env={"DJANGO_SETTINGS_MODULE": None, **(env or {})})


def database_exists(name: str) -> bool:
    if connection.vendor == "sqlite":
        return os.path.exists(name)
    sql = {
        "postgresql": "SELECT 1 FROM pg_database WHERE datname = %s",
        "mysql": "SELECT 1 FROM information_schema.schemata WHERE schema_name = %s",
    }[connection.vendor]
    with connection.cursor() as cursor:
        cursor.execute(sql, [name])
        return cursor.fetchone() is not None


@pytest.mark.django_db(transaction=True)
def test_runs_on_a_throwaway_database_and_leaves_the_real_one_alone():
    User.objects.create(username="real-user")

    proc = bench("--case", "users_raw_driver", "--size", "20", "--repeat", "1", "--format", "json")

    assert proc.returncode == 0, proc.stderr
    payload = json.loads(proc.stdout)
    [result] = payload["results"]
    assert (result["case"], result["size"], result["ratio"]) == ("users_raw_driver", 20, 1.0)
    assert list(User.objects.values_list("username", flat=True)) == ["real-user"]
    throwaway = payload["environment"]["database"]
    assert throwaway != connection.settings_dict["NAME"]
    assert not database_exists(throwaway)


def test_list_names_every_case_without_a_database():
    proc = bench("--list", env={"DATABASE_URL": unreachable_database_url()})

    assert proc.returncode == 0, proc.stderr
    listed = [line.split()[0] for line in proc.stdout.splitlines()]
    assert listed == [c.name for c in registry.all_cases()]


def test_unknown_case_is_a_usage_error():
    proc = bench("--case", "nope")

    assert proc.returncode == 2
    assert "no benchmark case matches 'nope'" in proc.stderr


def test_unreachable_server_exits_75_with_the_next_step():
    proc = bench("--size", "1", env={"DATABASE_URL": unreachable_database_url()})

    assert proc.returncode == 75
    assert "cannot create the throwaway database 'bench_none'" in proc.stderr
    assert "check DATABASE_URL" in proc.stderr


def test_switch_cost_runs_in_a_real_process():
    result = bench("--sends", "20", "--repeat", "2", module="bench.switch_cost")
    assert result.returncode == 0, result.stderr
    variants = [line.split()[0] for line in result.stdout.splitlines()[2:]]
    assert variants == ["plain", "switch", "switch", "muted", "no"]
    assert "medians of 2 repetitions of 20 sends" in result.stdout
