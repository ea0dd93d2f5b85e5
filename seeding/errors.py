"""Why seed_users refused to start: raised before anything is written."""

from __future__ import annotations

from dbtools.errors import ConfigurationError, UsageError


class SeedArgumentError(UsageError, ValueError):
    """An argument the database or the user model cannot take (the command exits 2)."""


class SeedSettingError(ConfigurationError, SeedArgumentError):
    """A SEED_USERS_FIELD_VALUES entry that cannot be used (the command exits 78)."""
