"""The pytest plugin as another project uses it: a throwaway project in tmp_path whose
conftest.py is the one documented line, run by ``python -m pytest`` in a real process.

The child finds ``signalaudit`` only because this package is installed (``pip install -e
.``, as the Makefile and CI do): it runs in the throwaway project's directory with an
environment that has none of this project's settings, database URL or PYTHONPATH. The
project is its own: SQLite, contenttypes + auth + an app ``shop`` with one model and one
``post_save`` receiver connected in ``ShopConfig.ready()`` with a ``dispatch_uid``.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.helpers.processes import PROJECT_DIR

THE_ONE_LINE = 'pytest_plugins = ["signalaudit.pytest_plugin"]\n'

PYTEST_INI = """\
[pytest]
DJANGO_SETTINGS_MODULE = shopsettings
pythonpath = .
addopts = --strict-markers
"""

FILES = {
    "shopsettings.py": """\
        SECRET_KEY = "throwaway"
        INSTALLED_APPS = [
            "django.contrib.contenttypes",
            "django.contrib.auth",
            "shop.apps.ShopConfig",
        ]
        DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": "shop.sqlite3"}}
        DEFAULT_AUTO_FIELD = "django.db.models.AutoField"
        USE_TZ = True
    """,
    "shop/__init__.py": "",
    "shop/models.py": """\
        from django.db import models


        class Order(models.Model):
            number = models.IntegerField()


        class Shipment(models.Model):
            order = models.ForeignKey(Order, on_delete=models.CASCADE)
    """,
    "shop/receivers.py": """\
        def ship_order(sender, instance, created, raw=False, **kwargs):
            from shop.models import Shipment

            if created and not raw:
                Shipment.objects.create(order=instance)
    """,
    "shop/apps.py": """\
        from django.apps import AppConfig
        from django.db.models.signals import post_save


        class ShopConfig(AppConfig):
            name = "shop"

            def ready(self):
                from shop.models import Order
                from shop.receivers import ship_order

                post_save.connect(ship_order, sender=Order, dispatch_uid="shop.ship_order")
    """,
    "test_orders.py": f"""\
        import os
        import sys

        import pytest
        from signalaudit import signal_skips_expected

        from shop.models import Order, Shipment

        pytestmark = pytest.mark.django_db


        @pytest.fixture
        def orders_in_bulk():
            return Order.objects.bulk_create([Order(number=1), Order(number=2)])


        def test_this_repository_is_not_on_the_path():
            assert os.environ["DJANGO_SETTINGS_MODULE"] == "shopsettings"
            assert {str(PROJECT_DIR)!r} not in [os.path.abspath(p) for p in sys.path]


        @pytest.mark.signal_audit
        def test_bulk_create():
            Order.objects.bulk_create([Order(number=1), Order(number=2)])  # BULK


        @pytest.mark.signal_audit
        def test_save():
            Order(number=3).save()
            assert Shipment.objects.count() == 1


        @pytest.mark.signal_audit
        @pytest.mark.signal_skips_expected("orders imported in bulk; shipments come later")
        def test_expected():
            Order.objects.bulk_create([Order(number=4)])


        @pytest.mark.signal_audit
        def test_fixture_setup_is_not_audited(orders_in_bulk):
            assert Order.objects.count() == 2


        def test_unmarked_update():
            Order.objects.create(number=5)
            Order.objects.update(number=6)  # UPDATE


        def test_fixture_report(signal_skips):
            Order.objects.create(number=7)
            with signal_skips_expected("renumbering"):
                Order.objects.update(number=8)
            [skip] = signal_skips.skips
            assert (skip.model, skip.operation, skip.rows) == ("shop.Order", "QuerySet.update", 1)
            assert skip.expected == "renumbering"
            assert [r.name for r in skip.receivers] == ["shop.receivers.ship_order"]


        def test_fixture_fails_on_an_unexpected_skip(signal_skips):
            Order.objects.bulk_create([Order(number=9)])  # FIXTURE BULK
    """,
}


def throwaway_project(root: Path, *, ini: str = PYTEST_INI) -> Path:
    for name, text in FILES.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
    (root / "pytest.ini").write_text(ini)
    (root / "conftest.py").write_text(THE_ONE_LINE)
    return root


def line_of(project: Path, marker: str) -> int:
    lines = (project / "test_orders.py").read_text().splitlines()
    return next(n for n, line in enumerate(lines, 1) if line.endswith(f"# {marker}"))


def clean_environment() -> dict[str, str]:
    """Enough to run Python, and nothing of this project: no DJANGO_SETTINGS_MODULE,
    DATABASE_URL, PYTHONPATH or PYTEST_* of the run that starts it."""
    kept = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "SYSTEMROOT")
    return {name: os.environ[name] for name in kept if name in os.environ}


def run_pytest(project: Path, *args: str) -> tuple[int, dict[str, str], str]:
    """``python -m pytest`` in ``project``: its code, each test's outcome, its output."""
    # Not tests/helpers/processes: those children run in this project, with its settings.
    finished = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-rA", *args],
        cwd=project,
        env=clean_environment(),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    output = finished.stdout + finished.stderr
    outcomes = {
        match["test"]: match["outcome"]
        for match in re.finditer(
            r"^(?P<outcome>PASSED|FAILED|ERROR) \S+::(?P<test>\w+)", output, re.M
        )
    }
    return finished.returncode, outcomes, output


def failure_of(output: str, test: str) -> str:
    """The failure section of ``test`` in pytest's report."""
    sections = re.split(r"^_{3,} (\w+) _{3,}$", output, flags=re.M)
    return sections[sections.index(test) + 1]


def test_marked_test_fails_on_a_skip_naming_the_line_and_the_receiver(tmp_path):
    project = throwaway_project(tmp_path)

    code, outcomes, output = run_pytest(project)

    assert outcomes == {
        "test_this_repository_is_not_on_the_path": "PASSED",
        "test_bulk_create": "FAILED",
        "test_save": "PASSED",
        "test_expected": "PASSED",
        "test_fixture_setup_is_not_audited": "PASSED",
        "test_unmarked_update": "PASSED",  # not audited without the marker or the option
        "test_fixture_report": "PASSED",
        "test_fixture_fails_on_an_unexpected_skip": "FAILED",
    }, output
    assert code == pytest.ExitCode.TESTS_FAILED
    failure = failure_of(output, "test_bulk_create")
    assert re.search(
        rf"^shop\.Order bulk_create \(.+\) at test_orders\.py:{line_of(project, 'BULK')} "
        r"skipped shop\.receivers\.ship_order$",
        failure,
        re.M,
    ), failure
    assert "signal_skips_expected(reason)" in failure  # what to do if it was intended
    # The message alone: no traceback into the plugin or the test's source.
    assert "Traceback" not in failure and "pytest_plugin.py" not in failure
    assert "def test_bulk_create" not in failure
    fixture_failure = failure_of(output, "test_fixture_fails_on_an_unexpected_skip")
    assert f"test_orders.py:{line_of(project, 'FIXTURE BULK')} skipped" in fixture_failure


@pytest.mark.parametrize(
    "how",
    [
        pytest.param(("--signal-audit",), id="option"),
        pytest.param((), id="ini"),
    ],
)
def test_option_and_ini_audit_every_test(tmp_path, how):
    ini = PYTEST_INI if how else PYTEST_INI + "signal_audit = true\n"
    project = throwaway_project(tmp_path, ini=ini)

    code, outcomes, output = run_pytest(project, *how)

    failed = {test for test, outcome in outcomes.items() if outcome == "FAILED"}
    assert failed == {
        "test_bulk_create",
        "test_unmarked_update",
        "test_fixture_fails_on_an_unexpected_skip",
    }, output
    assert len(outcomes) == 8, output
    assert code == pytest.ExitCode.TESTS_FAILED
    failure = failure_of(output, "test_unmarked_update")
    assert (
        f"shop.Order QuerySet.update (1 row(s)) at test_orders.py:{line_of(project, 'UPDATE')} "
        "skipped shop.receivers.ship_order"
    ) in failure
