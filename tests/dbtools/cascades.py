"""Models that reach the user through every kind of relation, with real tables, for a while.

The project's own models only ever CASCADE from the user; a project that
installs seed_users may have anything else. These are registered in the app
registry (so the user model's relations include them, as for any installed
model) and get their tables for as long as :func:`extra_models` lasts; then
both are gone again, so no other test sees them.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from django.apps import apps
from django.conf import settings
from django.db import connection, models

APP = "seeding"
# What SET() sets the rows of a deleted user to: a user who stays (see kept_user).
KEEPER: list[Any] = []


def _keeper() -> Any:
    return KEEPER[0]


def model_class(name: str, **fields: Any) -> type[models.Model]:
    meta = type("Meta", (), {"app_label": APP})
    return type(name, (models.Model,), {"__module__": __name__, "Meta": meta, **fields})


def base_models() -> list[type[models.Model]]:
    """A cascade two levels deep, every on_delete that sets a value, and a DO_NOTHING."""
    user = settings.AUTH_USER_MODEL
    child = model_class(
        "ProbeChild", user=models.ForeignKey(user, models.CASCADE, related_name="+")
    )
    return [
        child,
        model_class("ProbeGrandchild", child=models.ForeignKey(child, models.CASCADE)),
        model_class(
            "ProbeNulled",
            user=models.ForeignKey(user, models.SET_NULL, null=True, related_name="+"),
        ),
        model_class(
            "ProbeDefaulted",
            user=models.ForeignKey(
                user, models.SET_DEFAULT, null=True, default=None, related_name="+"
            ),
        ),
        model_class(
            "ProbeReassigned", user=models.ForeignKey(user, models.SET(_keeper), related_name="+")
        ),
        model_class("ProbeChildNulled", child=models.ForeignKey(child, models.SET_NULL, null=True)),
        # No constraint: Django's delete leaves these rows pointing at nothing.
        model_class(
            "ProbeDangling",
            user=models.ForeignKey(user, models.DO_NOTHING, db_constraint=False, related_name="+"),
        ),
    ]


@contextmanager
def extra_models(made: list[type[models.Model]]) -> Iterator[list[type[models.Model]]]:
    """Create the tables of ``made`` (registered by their definition); drop and unregister
    them at the end. Outside any transaction: SQLite alters no schema inside one."""
    try:
        with connection.schema_editor() as editor:
            for model in made:
                editor.create_model(model)
        yield made
    finally:
        try:
            with connection.schema_editor() as editor:
                for model in reversed(made):
                    editor.delete_model(model)
        finally:
            for model in made:
                del apps.all_models[APP][str(model._meta.model_name)]
            apps.clear_cache()


def by_name(made: list[type[models.Model]]) -> dict[str, type[models.Model]]:
    return {model.__name__: model for model in made}
