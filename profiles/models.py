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
