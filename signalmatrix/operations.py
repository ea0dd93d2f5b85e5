"""The ORM operations the matrix runs, each a generator: setup, ``yield``, then the operation.

Only what runs after the ``yield`` is recorded; the setup (users and groups the
operation needs) runs in the same savepoint and is rolled back with it.
"""

from __future__ import annotations

import difflib
import io
import itertools
import secrets
import tempfile
from collections.abc import Callable, Generator, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

from asgiref.sync import async_to_sync
from django.contrib.auth import get_user_model
from django.core import serializers
from django.core.management import call_command
from django.db import connections
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.models import ManyToManyField, Model

from dbtools.errors import UsageError
from profiles.models import Profile
from signalmatrix.users import (
    changed_value,
    filled_by_database,
    groups_field,
    new_user,
    no_groups_reason,
    update_field,
    user_values,
)


class Scene:
    """What the operations work with: a database, the user model, and names no other row has.

    Users are built for whichever user model is installed (``signalmatrix.users``):
    through its ``USERNAME_FIELD`` and required fields, never ``username=``.
    """

    def __init__(self, *, using: str) -> None:
        self.using = using
        self.token = secrets.token_hex(4)
        self.serial = itertools.count()
        self.user_model: type[Any] = get_user_model()
        self.users: Any = self.user_model._default_manager.db_manager(using)
        self.username_field: str = getattr(self.user_model, "USERNAME_FIELD", "username")
        # The field the update operations change; None: they cannot run on this model.
        self.update_field = update_field(self.user_model)

    def name(self) -> str:
        return f"signalmatrix-{self.token}-{next(self.serial)}"

    def values(self, **overrides: Any) -> dict[str, Any]:
        """A new user's keyword arguments: the username field and every required field."""
        return {**user_values(self.user_model, self.name()), **overrides}

    def unsaved_user(self, **overrides: Any) -> Any:
        return new_user(self.user_model, self.name(), **overrides)

    def saved_user(self) -> Any:
        """A user made as usual (with its profile); in the setup, so nothing is recorded."""
        return self.users.create_user(**self.values())

    def lookup(self, user: Any) -> dict[str, Any]:
        """The keyword argument that finds ``user`` by its username field."""
        return {self.username_field: user.get_username()}

    def changed(self, text: str = "Changed") -> dict[str, str]:
        """``{update_field: text}``, cut to the field's length."""
        field = cast(str, self.update_field)
        return {field: changed_value(self.user_model, field, text)}

    def group(self) -> Model:
        field = cast("ManyToManyField[Any, Any]", groups_field(self.user_model))
        groups = field.related_model._default_manager.db_manager(self.using)
        return groups.create(name=self.name())


Body = Callable[[Scene], Generator[None, None, None]]
Unsupported = Callable[[Scene], "str | None"]


@dataclass(frozen=True)
class Operation:
    key: str
    # As a Python programmer writes it; {field} is the scene's update field, {table}
    # the user model's table.
    code: str
    body: Body = field(repr=False)
    variant: str = ""
    model: type[Model] | None = None  # None: the user model
    # Whether delete receivers listen; see signalmatrix.recording on fast deletes.
    delete_receivers: bool = True
    # None when the backend and the user model can run it, else why not.
    unsupported: Unsupported = lambda scene: None

    def code_for(self, scene: Scene) -> str:
        return self.code.format(
            field=scene.update_field or "first_name", table=scene.user_model._meta.db_table
        )


OPERATIONS: list[Operation] = []


def operation(key: str, code: str, variant: str = "", **options: Any) -> Callable[[Body], Body]:
    def register(body: Body) -> Body:
        OPERATIONS.append(Operation(key=key, code=code, variant=variant, body=body, **options))
        return body

    return register


def _needs(feature: str) -> Unsupported:
    def unsupported(scene: Scene) -> str | None:
        connection = connections[scene.using]
        if getattr(connection.features, feature):
            return None
        return f"{connection.display_name} does not support it ({feature} is False)"

    return unsupported


def _needs_update_field(scene: Scene) -> str | None:
    if scene.update_field is not None:
        return None
    return (
        f"{scene.user_model._meta.label} has no text field an update can change "
        "(editable, not a key, not the username or e-mail field)"
    )


def _needs_groups(scene: Scene) -> str | None:
    return no_groups_reason(scene.user_model)


def _needs_all(*checks: Unsupported) -> Unsupported:
    def unsupported(scene: Scene) -> str | None:
        return next((reason for check in checks if (reason := check(scene))), None)

    return unsupported


# -- saving one object --


@operation("save_insert", "user.save()", "insert")
def _save_insert(scene: Scene) -> Generator[None, None, None]:
    user = scene.unsaved_user()
    yield
    user.save(using=scene.using)


@operation("save_update", "user.save()", "update")
def _save_update(scene: Scene) -> Generator[None, None, None]:
    user = scene.saved_user()
    if scene.update_field is not None:
        for name, value in scene.changed().items():
            setattr(user, name, value)
    yield
    user.save(using=scene.using)


@operation(
    "save_update_fields",
    'user.save(update_fields=["{field}"])',
    "update",
    unsupported=_needs_update_field,
)
def _save_update_fields(scene: Scene) -> Generator[None, None, None]:
    user = scene.saved_user()
    for name, value in scene.changed().items():
        setattr(user, name, value)
    yield
    user.save(using=scene.using, update_fields=list(scene.changed()))


@operation("create", "User.objects.create()")
def _create(scene: Scene) -> Generator[None, None, None]:
    yield
    scene.users.create(**scene.values())


@operation("create_user", "User.objects.create_user()")
def _create_user(scene: Scene) -> Generator[None, None, None]:
    yield
    scene.users.create_user(**scene.values())


@operation("get_or_create_created", "User.objects.get_or_create()", "created")
def _get_or_create_created(scene: Scene) -> Generator[None, None, None]:
    values = scene.values()
    lookup = {scene.username_field: values.pop(scene.username_field)}
    yield
    scene.users.get_or_create(**lookup, defaults=values)


@operation("get_or_create_found", "User.objects.get_or_create()", "found")
def _get_or_create_found(scene: Scene) -> Generator[None, None, None]:
    user = scene.saved_user()
    yield
    scene.users.get_or_create(**scene.lookup(user))


@operation(
    "update_or_create_created",
    "User.objects.update_or_create()",
    "created",
    unsupported=_needs_update_field,
)
def _update_or_create_created(scene: Scene) -> Generator[None, None, None]:
    values = scene.values()
    lookup = {scene.username_field: values.pop(scene.username_field)}
    yield
    scene.users.update_or_create(**lookup, defaults={**values, **scene.changed("New")})


@operation(
    "update_or_create_updated",
    "User.objects.update_or_create()",
    "updated",
    unsupported=_needs_update_field,
)
def _update_or_create_updated(scene: Scene) -> Generator[None, None, None]:
    user = scene.saved_user()
    yield
    scene.users.update_or_create(**scene.lookup(user), defaults=scene.changed())


# -- many objects at once --


@operation("bulk_create", "User.objects.bulk_create()", "two users")
def _bulk_create(scene: Scene) -> Generator[None, None, None]:
    users = [scene.unsaved_user(), scene.unsaved_user()]
    yield
    scene.users.bulk_create(users)


@operation(
    "bulk_create_ignore_conflicts",
    "User.objects.bulk_create(ignore_conflicts=True)",
    "one new user, one existing",
    unsupported=_needs("supports_ignore_conflicts"),
)
def _bulk_create_ignore_conflicts(scene: Scene) -> Generator[None, None, None]:
    existing = scene.saved_user()
    users = [scene.unsaved_user(**scene.lookup(existing)), scene.unsaved_user()]
    yield
    scene.users.bulk_create(users, ignore_conflicts=True)


@operation(
    "bulk_create_update_conflicts",
    "User.objects.bulk_create(update_conflicts=True)",
    "one new user, one existing",
    unsupported=_needs_all(_needs("supports_update_conflicts"), _needs_update_field),
)
def _bulk_create_update_conflicts(scene: Scene) -> Generator[None, None, None]:
    existing = scene.saved_user()
    users = [scene.unsaved_user(**scene.lookup(existing), **scene.changed())]
    users.append(scene.unsaved_user())
    # MySQL and MariaDB update on any unique key and refuse unique_fields.
    target = connections[scene.using].features.supports_update_conflicts_with_target
    yield
    scene.users.bulk_create(
        users,
        update_conflicts=True,
        update_fields=list(scene.changed()),
        unique_fields=[scene.username_field] if target else None,
    )


@operation(
    "bulk_update",
    'User.objects.bulk_update(users, ["{field}"])',
    "two users",
    unsupported=_needs_update_field,
)
def _bulk_update(scene: Scene) -> Generator[None, None, None]:
    users = [scene.saved_user(), scene.saved_user()]
    for user in users:
        for name, value in scene.changed().items():
            setattr(user, name, value)
    yield
    scene.users.bulk_update(users, list(scene.changed()))


@operation(
    "queryset_update",
    "User.objects.filter(...).update()",
    "two users",
    unsupported=_needs_update_field,
)
def _queryset_update(scene: Scene) -> Generator[None, None, None]:
    pks = [scene.saved_user().pk, scene.saved_user().pk]
    yield
    scene.users.filter(pk__in=pks).update(**scene.changed())


# -- deleting --


@operation("delete", "user.delete()")
def _delete(scene: Scene) -> Generator[None, None, None]:
    user = scene.saved_user()
    yield
    user.delete(using=scene.using)


@operation("queryset_delete", "User.objects.filter(...).delete()", "two users")
def _queryset_delete(scene: Scene) -> Generator[None, None, None]:
    pks = [scene.saved_user().pk, scene.saved_user().pk]
    yield
    scene.users.filter(pk__in=pks).delete()


@operation(
    "queryset_delete_unobserved",
    "User.objects.filter(...).delete()",
    "two users, no delete receiver",
    delete_receivers=False,
)
def _queryset_delete_unobserved(scene: Scene) -> Generator[None, None, None]:
    yield from _queryset_delete(scene)


@operation(
    "profile_queryset_delete",
    "Profile.objects.filter(...).delete()",
    "two profiles",
    model=Profile,
)
def _profile_queryset_delete(scene: Scene) -> Generator[None, None, None]:
    pks = [scene.saved_user().pk, scene.saved_user().pk]
    yield
    Profile.objects.using(scene.using).filter(user__in=pks).delete()


@operation(
    "profile_queryset_delete_unobserved",
    "Profile.objects.filter(...).delete()",
    "two profiles, no delete receiver",
    model=Profile,
    delete_receivers=False,
)
def _profile_queryset_delete_unobserved(scene: Scene) -> Generator[None, None, None]:
    yield from _profile_queryset_delete(scene)


# -- fixtures, async, many-to-many, raw SQL --


@operation("loaddata", "manage.py loaddata", "a fixture with one user")
def _loaddata(scene: Scene) -> Generator[None, None, None]:
    with tempfile.TemporaryDirectory(prefix="signalmatrix-") as directory:
        path = Path(directory) / "signalmatrix.json"
        path.write_text(fixture_of(scene.unsaved_user()))
        yield
        call_command("loaddata", str(path), database=scene.using, verbosity=0, stdout=io.StringIO())


def fixture_of(user: Model) -> str:
    """A JSON fixture of the unsaved ``user``: its concrete fields, and its pk unless generated.

    Django's serializer writes each value as the field itself reads it back,
    whatever its type (a UUID, a date); the many-to-many fields are left out,
    since an unsaved user has no relations yet.
    """
    fields = [f.name for f in user._meta.concrete_fields if not f.primary_key]
    return str(serializers.serialize("json", [user], fields=fields))


# async_to_sync runs the coroutine in a loop of its own, and the save inside it
# (sync_to_async, thread-sensitive) back in this thread, on this connection:
# inside the transaction that is rolled back.


@operation("asave", "await user.asave()", "insert")
def _asave(scene: Scene) -> Generator[None, None, None]:
    user = scene.unsaved_user()

    async def asave() -> None:
        await user.asave(using=scene.using)

    yield
    async_to_sync(asave)()


@operation("acreate", "await User.objects.acreate()")
def _acreate(scene: Scene) -> Generator[None, None, None]:
    values = scene.values()

    async def acreate() -> None:
        await scene.users.acreate(**values)

    yield
    async_to_sync(acreate)()


@operation("groups_add", "user.groups.add(group)", unsupported=_needs_groups)
def _groups_add(scene: Scene) -> Generator[None, None, None]:
    user, group = scene.saved_user(), scene.group()
    yield
    user.groups.add(group)


@operation("groups_remove", "user.groups.remove(group)", unsupported=_needs_groups)
def _groups_remove(scene: Scene) -> Generator[None, None, None]:
    user, group = scene.saved_user(), scene.group()
    user.groups.add(group)
    yield
    user.groups.remove(group)


@operation(
    "groups_set", "user.groups.set([other])", "one group for another", unsupported=_needs_groups
)
def _groups_set(scene: Scene) -> Generator[None, None, None]:
    user, group, other = scene.saved_user(), scene.group(), scene.group()
    user.groups.add(group)
    yield
    user.groups.set([other])


@operation("groups_clear", "user.groups.clear()", unsupported=_needs_groups)
def _groups_clear(scene: Scene) -> Generator[None, None, None]:
    user, group = scene.saved_user(), scene.group()
    user.groups.add(group)
    yield
    user.groups.clear()


@operation("raw_sql", 'cursor.execute("INSERT INTO {table} ...")')
def _raw_sql(scene: Scene) -> Generator[None, None, None]:
    connection = connections[scene.using]
    sql, params = insert_statement(scene.unsaved_user(), connection)
    yield
    with connection.cursor() as cursor:
        cursor.execute(sql, params)


def insert_statement(obj: Model, connection: BaseDatabaseWrapper) -> tuple[str, list[Any]]:
    """A plain INSERT of ``obj``'s row; what the database generates is left to it.

    Every column of the table except an auto-incremented key and columns with a
    database default or generated by the database; the primary key otherwise
    (a UUID from its default, a name). Each value goes through its field's
    ``pre_save()`` and ``get_db_prep_save()``, so it is bound as the backend
    stores that type (a UUID as 32 hex digits where there is no uuid column).
    """
    qn = connection.ops.quote_name
    fields = [f for f in obj._meta.local_concrete_fields if not filled_by_database(f)]
    values = [f.get_db_prep_save(f.pre_save(obj, add=True), connection) for f in fields]
    columns = ", ".join(qn(cast(str, f.column)) for f in fields)
    placeholders = ", ".join(["%s"] * len(fields))
    return f"INSERT INTO {qn(obj._meta.db_table)} ({columns}) VALUES ({placeholders})", values


class UnknownOperationError(UsageError, LookupError):
    """Keys that name no operation; the message gives the closest keys and every key."""

    def __init__(self, unknown: Sequence[str]) -> None:
        self.unknown = list(unknown)
        keys = [op.key for op in OPERATIONS]
        problems = []
        for key in self.unknown:
            closest = _closest_keys(key, keys)
            hint = f" (closest: {', '.join(closest)})" if closest else ""
            problems.append(f"unknown operation {key!r}{hint}")
        super().__init__("; ".join(problems) + f"; the operations are: {', '.join(keys)}.")


def operations_named(keys: Iterable[str]) -> list[Operation]:
    """The operations ``keys`` name, in the table's order; every operation for no key.

    The table's order, not the order given, so an excerpt reads like the full
    table. Raises :class:`UnknownOperationError` (exit 2) for a key that names
    no operation, before anything runs.
    """
    wanted = list(dict.fromkeys(keys))
    known = {op.key for op in OPERATIONS}
    unknown = [key for key in wanted if key not in known]
    if unknown:
        raise UnknownOperationError(unknown)
    return [op for op in OPERATIONS if not wanted or op.key in wanted]


def _closest_keys(key: str, keys: list[str], limit: int = 3) -> list[str]:
    """``save`` -> the ``save_...`` keys; otherwise the keys spelled most alike."""
    starting = [k for k in keys if k.startswith(f"{key}_")]
    similar = difflib.get_close_matches(key, keys, n=limit, cutoff=0.6)
    return list(dict.fromkeys([*starting, *similar]))[:limit]
