"""Welcome-mail records in a given state, written directly, for tests of the readers."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.utils import timezone

from profiles.models import WelcomeMail
from profiles.welcome.records import pending_values, suppressed_values


def record(user: Any, status: str, *, age: timedelta = timedelta(0)) -> WelcomeMail:
    """A record of ``user`` in ``status``, created ``age`` ago."""
    created = timezone.now() - age
    values = (
        suppressed_values("test", created) if status == "suppressed" else pending_values(created)
    )
    return WelcomeMail.objects.create(user_id=user.pk, **{**values, "status": status})
