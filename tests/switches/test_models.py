"""The one rule for an active switch: no expiry, or one still ahead."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from switches.models import ReceiverSwitch, is_active

pytestmark = pytest.mark.django_db


def test_a_switch_is_active_without_an_expiry_or_until_it_passes():
    now = timezone.now()
    for name, expires_at in (
        ("forever", None),
        ("later", now + timedelta(seconds=1)),
        ("now", now),
        ("earlier", now - timedelta(seconds=1)),
    ):
        ReceiverSwitch.objects.create(name=name, switched_off_at=now, expires_at=expires_at)
    active = ReceiverSwitch.objects.active(now).order_by("name").values_list("name", flat=True)
    assert list(active) == ["forever", "later"]
    later = now + timedelta(seconds=2)
    assert list(ReceiverSwitch.objects.active(later).values_list("name", flat=True)) == ["forever"]


def test_is_active_is_the_same_rule_as_an_expression_for_every_row():
    now = timezone.now()
    for name, expires_at in (
        ("forever", None),
        ("later", now + timedelta(seconds=1)),
        ("now", now),
    ):
        ReceiverSwitch.objects.create(name=name, switched_off_at=now, expires_at=expires_at)
    rows = ReceiverSwitch.objects.order_by("name").values_list("name", is_active(now))
    assert list(rows) == [("forever", True), ("later", True), ("now", False)]
