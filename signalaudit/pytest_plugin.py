"""A pytest plugin that fails a test on a write that skipped its receivers.

Enable it in the project's root ``conftest.py`` with one line (pytest-django
sets Django up; the plugin needs nothing else)::

    pytest_plugins = ["signalaudit.pytest_plugin"]

Then audit a test by asking for the ``signal_skips`` fixture (the report of
its skips), by marking it ``@pytest.mark.signal_audit``, or every test with
``--signal-audit`` (or ``signal_audit = true`` in the ini file). An audited
test fails when its body wrote rows of a model with receivers outside the
path that sends their signals; mark a test
``@pytest.mark.signal_skips_expected("why")``, or wrap the intended writes
in ``signalaudit.signal_skips_expected("why")``, to declare them intended.
Only the call phase is audited: the test function, not its fixtures' setup
and teardown (a unittest ``TestCase`` runs ``setUp`` and ``tearDown`` inside
the call, so those are audited with it).
"""

from __future__ import annotations

from collections.abc import Generator
from contextlib import AbstractContextManager, nullcontext

import pytest

from signalaudit.detector import SignalSkipsFound, audit_signal_skips, signal_skips_expected
from signalaudit.report import AuditReport

_REPORT = pytest.StashKey[AuditReport]()

_HINT = (
    "Intended? Mark the test @pytest.mark.signal_skips_expected(reason), or wrap those "
    "writes in signalaudit.signal_skips_expected(reason)."
)


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


def _expected(item: pytest.Item) -> AbstractContextManager[None]:
    marker = item.get_closest_marker("signal_skips_expected")
    if marker is None:
        return nullcontext()
    reason = marker.args[0] if marker.args else marker.kwargs.get("reason")
    if not isinstance(reason, str) or not reason.strip():
        pytest.fail(
            f"{item.nodeid}: @pytest.mark.signal_skips_expected needs the reason the skips "
            'are intended, e.g. signal_skips_expected("import: profiles are backfilled").',
            pytrace=False,
        )
    return signal_skips_expected(reason)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Generator[None, object, object]:
    report = item.stash.get(_REPORT, None)
    if report is None:
        if not _audited(item):
            return (yield)
        report = AuditReport()
    expected = _expected(item)
    # If the body raises, that is the test's failure; the skips still show as a section.
    try:
        with audit_signal_skips(report=report), expected:
            outcome = yield
    finally:
        if report.skips:
            lines = [
                skip.line() + (f" (expected: {skip.expected})" if skip.expected else "")
                for skip in report.skips
            ]
            item.add_report_section("call", "signal audit", "\n".join(lines))
    if report.unexpected:
        pytest.fail(f"{SignalSkipsFound(report)}\n{_HINT}", pytrace=False)
    return outcome
