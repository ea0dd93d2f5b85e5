from django.conf import settings
from django.db import models

from seeding.generator import username_prefix


class SeedRun(models.Model):
    """One run of seed_users: its number names the users it made ("seed<number>-...")."""

    number = models.PositiveIntegerField(unique=True)
    via = models.CharField(max_length=8)
    seed = models.BigIntegerField()
    requested = models.PositiveIntegerField()
    created = models.PositiveIntegerField(default=0)
    locales = models.CharField(max_length=200)
    started_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    # Runs from before migration 0002 recorded no SeededUser rows: which users
    # they created is unknown, so purge_seeded leaves them alone.
    members_recorded = models.BooleanField(default=True)

    def __str__(self) -> str:
        return f"seed run {self.number} ({self.created}/{self.requested} via {self.via})"

    @property
    def username_prefix(self) -> str:
        return username_prefix(self.number)


class SeededUser(models.Model):
    """A user that a seed run created, written in the same transaction as the user.

    purge_seeded deletes exactly these users; a name that merely looks seeded
    is never enough. The user is the primary key (one index to maintain per
    row, whatever the user model's key type); deleting the user deletes the
    row, and a run cannot be deleted while it still has users.
    """

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, primary_key=True, related_name="+"
    )
    # No constraint in the database: checking it per row costs more than the
    # user's insert itself on PostgreSQL, and Django enforces PROTECT anyway.
    run = models.ForeignKey(
        SeedRun, on_delete=models.PROTECT, related_name="members", db_constraint=False
    )

    def __str__(self) -> str:
        return f"user #{self.user_id} of seed run #{self.run_id}"
