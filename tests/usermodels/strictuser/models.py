"""A string primary key that is the username field, and a required field without a default."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.base_user import AbstractBaseUser, BaseUserManager
from django.contrib.auth.models import PermissionsMixin
from django.db import models
from django.utils import timezone


class StrictUserManager(BaseUserManager["StrictUser"]):
    def create_user(self, handle: str, password: str | None = None, **fields: Any) -> StrictUser:
        user = self.model(handle=handle, **fields)
        user.set_password(password)
        user.save(using=self._db)
        return user

    def create_superuser(
        self, handle: str, password: str | None = None, **fields: Any
    ) -> StrictUser:
        return self.create_user(handle, password, is_superuser=True, **fields)


class StrictUser(AbstractBaseUser, PermissionsMixin):
    handle = models.CharField(max_length=64, primary_key=True)
    email = models.EmailField(blank=True)
    tenant = models.CharField(max_length=32)  # required: no default, not blank
    is_active = models.BooleanField(default=True)
    date_joined = models.DateTimeField(default=timezone.now)

    objects = StrictUserManager()

    USERNAME_FIELD = "handle"
    EMAIL_FIELD = "email"
    REQUIRED_FIELDS = ["email", "tenant"]
