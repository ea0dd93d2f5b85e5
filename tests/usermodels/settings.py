"""The project's settings with another user model: each variant's settings module calls this."""

from __future__ import annotations

from typing import Any


def with_user_model(namespace: dict[str, Any], *, app: str, model: str) -> None:
    """Install ``app`` before the project's apps (profiles' migrations point at it) and swap."""
    apps = namespace["INSTALLED_APPS"]
    position = apps.index("django.contrib.auth") + 1
    namespace["INSTALLED_APPS"] = [*apps[:position], app, *apps[position:]]
    namespace["AUTH_USER_MODEL"] = model
