from __future__ import annotations

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import models


class ProfileManager(models.Manager["Profile"]):
    def get_by_natural_key(self, username: str) -> Profile:
        """A profile by its user's natural key, so a fixture needs no pk of either."""
        return self.get(**{f"user__{get_user_model().USERNAME_FIELD}": username})


class Profile(models.Model):
    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="profile"
    )
    bio = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    objects = ProfileManager()

    def __str__(self) -> str:
        return f"Profile of user #{self.user_id}"

    def natural_key(self) -> tuple[str, ...]:
        # One profile per user: the user's natural key is the profile's too.
        return self.user.natural_key()

    natural_key.dependencies = [settings.AUTH_USER_MODEL]  # type: ignore[attr-defined]


class WelcomeMail(models.Model):
    """The welcome mail of one user, as a fact in the database: one row per user.

    Written pending by the post_save receiver in the saving transaction, or
    suppressed when the receiver is off; created by ``welcome_mails sync`` for
    users that no receiver saw (bulk inserts, raw SQL, COPY). A sender leases
    due rows (``sending`` until ``due_at``), sends them and marks each one sent;
    a lease that runs out makes the row due again. See docs/receivers.md.
    """

    class Status(models.TextChoices):
        PENDING = "pending"  # due at ``due_at`` (later after a transient error)
        SENDING = "sending"  # leased to a sender until ``due_at``
        SENT = "sent"
        SUPPRESSED = "suppressed"  # never to be sent; ``reason`` says why
        FAILED = "failed"  # gave up; ``reason`` has the last error; ``retry`` revives it

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="welcome_mail"
    )
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    # Pending: when it may be sent; sending: when the lease runs out.
    due_at = models.DateTimeField()
    attempts = models.PositiveIntegerField(default=0)
    reason = models.TextField(blank=True)
    created_at = models.DateTimeField()
    sent_at = models.DateTimeField(null=True, blank=True)
    message_id = models.CharField(max_length=255, blank=True)

    class Meta:
        indexes = [
            # A sender's claim: the due rows of one status, oldest first.
            models.Index(fields=["status", "due_at"], name="welcome_mail_due"),
        ]

    def __str__(self) -> str:
        return f"Welcome mail of user #{self.user_id}: {self.status}"
