"""Catch, in running code, each write that skipped its receivers, with the line that made it.

``signal_matrix`` shows which ORM operations skip signals; this package finds
the lines of a project's own code that do it, while they run::

    from signalaudit import audit_signal_skips, signal_skips_expected

    with audit_signal_skips() as report:
        run_the_import()
    for site in report.sites():
        print(site.model, site.operation, site.site, site.receiver_names)

Also: ``SIGNAL_AUDIT=warn|error`` for the whole process (add ``signalaudit``
to INSTALLED_APPS), the pytest plugin ``signalaudit.pytest_plugin``, and
``manage.py signal_audit -- COMMAND``. docs/audit.md says what it cannot see.
"""

from signalaudit.detector import (
    SignalSkipsFound,
    audit_signal_skips,
    report_write,
    signal_skips_expected,
)
from signalaudit.report import AuditReport, CallSite, SignalSkipWarning, SiteSummary, Skip
from signalaudit.statements import Write

__all__ = [
    "AuditReport",
    "CallSite",
    "SignalSkipWarning",
    "SignalSkipsFound",
    "SiteSummary",
    "Skip",
    "Write",
    "audit_signal_skips",
    "report_write",
    "signal_skips_expected",
]
