"""The bulk seed's PostgreSQL COPY reports itself to the detector, which Django's cursor
cannot show it: one skip per batch, at the report_write line, with the rows copied."""

from __future__ import annotations

import pytest
from django.db import connection

from signalaudit import audit_signal_skips
from tests.helpers.audit import SKIPPED, bulk_insert_site
from tests.helpers.seeding import seed
from tests.helpers.users import user_model

pytestmark = [
    pytest.mark.applies_if(connection.vendor == "postgresql", reason="COPY: PostgreSQL only"),
    pytest.mark.django_db,
]


def test_each_copied_batch_is_a_skip_at_the_report_write_line():
    with audit_signal_skips() as report:
        seed(250, batch_size=100)
    assert [(s.operation, s.write, s.rows, s.database) for s in report.skips] == [
        ("COPY", "insert", 100, "default"),
        ("COPY", "insert", 100, "default"),
        ("COPY", "insert", 50, "default"),
    ]
    [site] = report.sites()
    assert site.model == user_model()._meta.label
    assert site.site == bulk_insert_site()
    assert site.receiver_names == SKIPPED
