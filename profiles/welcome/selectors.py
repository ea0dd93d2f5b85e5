"""Reads: the welcome mails' counts per state, for ``welcome_mails status`` and
``profiles_status``."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db.models import Count, Min
from django.utils import timezone

from profiles.models import WelcomeMail
from profiles.selectors import users_without_welcome_mail

Status = WelcomeMail.Status
# Not sent yet, and meant to be: a sender's lease still counts as waiting.
WAITING = (Status.PENDING, Status.SENDING)


@dataclass(frozen=True)
class WelcomeMailCounts:
    """How many welcome-mail records are in each state, and how many users have none.

    ``oldest_pending_created_at``: when the oldest record still waiting to be
    sent (pending, or leased to a sender) was created; None when none waits.
    """

    pending: int
    sending: int
    sent: int
    suppressed: int
    failed: int
    without_record: int
    oldest_pending_created_at: datetime | None

    @property
    def records(self) -> int:
        return self.pending + self.sending + self.sent + self.suppressed + self.failed

    @property
    def waiting(self) -> int:
        """Records not sent yet that are to be: pending or sending."""
        return self.pending + self.sending

    def oldest_pending_age(self, now: datetime | None = None) -> timedelta | None:
        """How long the oldest waiting record has waited; None when none waits."""
        if self.oldest_pending_created_at is None:
            return None
        return max((now or timezone.now()) - self.oldest_pending_created_at, timedelta(0))

    def overdue(self, max_age: timedelta, now: datetime | None = None) -> bool:
        """Whether a record has waited longer than ``max_age`` (for ``status --check``)."""
        age = self.oldest_pending_age(now)
        return age is not None and age > max_age


def welcome_mail_counts(*, using: str) -> WelcomeMailCounts:
    """The records per state (one grouped query) and the users without a record."""
    rows = (
        WelcomeMail.objects.using(using)
        .order_by()
        .values("status")
        .annotate(records=Count("pk"), oldest=Min("created_at"))
    )
    counts = dict.fromkeys(Status.values, 0)
    oldest: datetime | None = None
    for row in rows:
        counts[row["status"]] = row["records"]
        if row["status"] in WAITING and row["oldest"] is not None:
            oldest = row["oldest"] if oldest is None else min(oldest, row["oldest"])
    return WelcomeMailCounts(
        pending=counts[Status.PENDING],
        sending=counts[Status.SENDING],
        sent=counts[Status.SENT],
        suppressed=counts[Status.SUPPRESSED],
        failed=counts[Status.FAILED],
        without_record=users_without_welcome_mail(using=using).in_table,
        oldest_pending_created_at=oldest,
    )
