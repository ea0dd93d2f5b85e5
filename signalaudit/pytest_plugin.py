"""A pytest plugin that fails a test on a write that skipped its receivers.

Enable it in a project's ``conftest.py`` with one line (pytest-django sets Django up)::

    pytest_plugins = ["signalaudit.pytest_plugin"]

Then audit a test by asking for the ``signal_skips`` fixture (the report of
its skips), by marking it ``@pytest.mark.signal_audit``, or every test with
``--signal-audit`` (or ``signal_audit = true`` in the ini file). An audited
test fails when its body wrote rows of a model with receivers outside the
path that sends their signals; mark a test
``@pytest.mark.signal_skips_expected("why")``, or wrap the intended writes
in ``signalaudit.signal_skips_expected("why")``, to declare them intended.
Only the test's body is audited, not its fixtures' setup and teardown.
"""

from __future__ import annotations

from collections.abc import Generator
from contextlib import ExitStack

import pytest

from signalaudit.detector import SignalSkipsFound, audit_signal_skips, signal_skips_expected
from signalaudit.report import AuditReport

_REPORT = pytest.StashKey[AuditReport]()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("signalaudit", "signal audit")
    group.addoption(
        "--signal-audit",
        action="store_true",
        default=None,
        help="fail every test whose body writes rows without running their receivers",
    )
    parser.addini("signal_audit", "audit every test, as --signal-audit does", type="bool")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "signal_audit: fail the test on a write that skipped its receivers"
    )
    config.addinivalue_line(
        "markers",
        "signal_skips_expected(reason): the test's skips are intended; reported, not failed",
    )


@pytest.fixture
def signal_skips(request: pytest.FixtureRequest) -> AuditReport:
    """The skips of this test's body, filled as it runs; the test fails on an unexpected one."""
    report = AuditReport()
    request.node.stash[_REPORT] = report
    return report


def _audited(item: pytest.Item) -> bool:
    option = item.config.getoption("signal_audit")
    if option is None:
        option = item.config.getini("signal_audit")
    return bool(option) or item.get_closest_marker("signal_audit") is not None


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Generator[None, object, object]:
    report = item.stash.get(_REPORT, None)
    if report is None and not _audited(item):
        return (yield)
    try:
        with ExitStack() as stack:
            stack.enter_context(audit_signal_skips(fail=True, report=report))
            if (marker := item.get_closest_marker("signal_skips_expected")) is not None:
                stack.enter_context(signal_skips_expected(*marker.args, **marker.kwargs))
            return (yield)
    except SignalSkipsFound as exc:  # raised as the audit ended: the body made a skip
        message = str(exc)
    pytest.fail(message, pytrace=False)
