from __future__ import annotations

from datetime import datetime

from django.db import models


def is_active(now: datetime) -> models.ExpressionWrapper[models.Q]:
    """Whether a switch still holds its receiver off at ``now``: no expiry, or a later one.

    The one place this rule is written: the snapshot every process reads,
    ``receivers list``, and the services deciding whether a receiver was off
    all use it. An expression, so a service can lock every row and learn which
    are active in one statement (``annotate(is_active=is_active(now))``).
    """
    rule = models.Q(expires_at__isnull=True) | models.Q(expires_at__gt=now)
    return models.ExpressionWrapper(rule, output_field=models.BooleanField())


class ReceiverSwitchQuerySet(models.QuerySet["ReceiverSwitch"]):
    def active(self, now: datetime) -> ReceiverSwitchQuerySet:
        """The switches still active at ``now`` (:func:`is_active`)."""
        return self.filter(is_active(now))


class ReceiverSwitch(models.Model):
    """A receiver switched off: one row per receiver name, and no row means on.

    A row whose ``expires_at`` has passed counts as on; ``receivers on`` (or the
    next ``receivers off``) replaces or removes it.
    """

    name = models.CharField(max_length=255, unique=True)
    reason = models.TextField(blank=True)
    switched_off_by = models.CharField(max_length=150, blank=True)
    switched_off_at = models.DateTimeField()
    expires_at = models.DateTimeField(null=True, blank=True)

    objects = ReceiverSwitchQuerySet.as_manager()

    def __str__(self) -> str:
        return f"{self.name} switched off"
