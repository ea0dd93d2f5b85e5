"""Run the ORM operations on a database, record what receivers see, roll everything back."""

from __future__ import annotations

import inspect
import secrets
from collections.abc import Callable, Collection
from dataclasses import dataclass, replace
from typing import Any

import django
from asgiref.sync import async_to_sync, iscoroutinefunction
from django.contrib.auth import get_user_model
from django.db import DatabaseError, connections, transaction
from django.db.models import ForeignObjectRel, Model
from django.db.models.fields import AutoFieldMixin
from django.db.models.signals import post_save, pre_save

from dbtools.errors import first_line
from profiles.models import Profile
from signalmatrix.operations import Operation, Scene, operations_named
from signalmatrix.recording import DELETE_SIGNALS, SIGNALS, Event, recording
from signalmatrix.users import UnbuildableUser, groups_field, new_user
from switches.introspection import dotted_name, live_receivers
from switches.names import top_level_package
from switches.selectors import ReceiverState, receivers_list

# What a transaction cannot take back, by backend; SQLite takes back everything
# (Django's AUTOINCREMENT counters live in a table, sqlite_sequence).
NOT_ROLLED_BACK = {
    "postgresql": "PostgreSQL sequences are not transactional: the ids this run drew for "
    "{models} stay used, so new rows get higher ids than they would have.",
    "mysql": "InnoDB (MySQL, MariaDB) does not roll back AUTO_INCREMENT counters: the ids "
    "this run drew for {models} stay used, so new rows get higher ids than they would have.",
}


@dataclass(frozen=True)
class OperationResult:
    key: str
    code: str
    variant: str
    model: str  # label of the model operated on
    listened: tuple[str, ...]  # the signals a recording receiver listened to
    events: tuple[Event, ...] = ()
    users_created: int = 0
    profiles_created: int = 0
    # Observed models whose rows were deleted without being loaded: no signal for them.
    fast_deleted: tuple[str, ...] = ()
    # In a row meant to have no delete receiver: observed models that have one anyway.
    delete_listened_by_others: tuple[str, ...] = ()
    unsupported: str | None = None
    error: str | None = None

    @property
    def ran(self) -> bool:
        return self.unsupported is None and self.error is None

    @property
    def profile_created(self) -> bool | None:
        """True when every user it created has a profile; None when it created no user."""
        if not self.ran or self.users_created <= 0:
            return None
        return self.profiles_created >= self.users_created


@dataclass(frozen=True)
class MatrixResult:
    database: str
    vendor: str
    backend: str  # e.g. "PostgreSQL 16.4"
    django_version: str
    user_model: str
    # The through model that sends m2m_changed for user.groups; None: the model has no groups.
    m2m_sender: str | None
    receivers: tuple[ReceiverState, ...]  # connected to the observed models, with switch state
    operations: tuple[OperationResult, ...]
    not_rolled_back: str | None

    @property
    def failed(self) -> tuple[OperationResult, ...]:
        return tuple(op for op in self.operations if op.error is not None)


def observed_models() -> tuple[type[Model], type[Model], type[Model] | None]:
    """The user model, Profile, and the through model of ``user.groups`` (None: no groups)."""
    user_model = get_user_model()
    groups = groups_field(user_model)
    return user_model, Profile, groups.remote_field.through if groups is not None else None


def signal_matrix_run(*, using: str, operations: Collection[str] = ()) -> MatrixResult:
    """Run every operation (or those whose keys ``operations`` gives) on ``using``, inside
    a transaction that is rolled back.

    Each operation gets a savepoint of its own, rolled back after it, so each
    starts from the database as it was; a DatabaseError in one is recorded and
    the others still run. Nothing is committed, so no on_commit callback (the
    welcome e-mail) ever runs. An unknown key raises
    :class:`~signalmatrix.operations.UnknownOperationError` before anything runs.
    """
    selected = operations_named(operations)
    connection = connections[using]
    observed = observed_models()
    labels = {m._meta.label for m in observed if m is not None}
    receivers = tuple(
        r
        for r in receivers_list(using=using)
        if r.signal in SIGNALS and (r.sender is None or r.sender in labels)
    )
    scene = Scene(using=using)
    with transaction.atomic(using=using):
        results = tuple(_run(op, scene, observed) for op in selected)
        transaction.set_rollback(True, using=using)
    version = ".".join(str(n) for n in connection.get_database_version())
    return MatrixResult(
        database=using,
        vendor=connection.vendor,
        backend=f"{connection.display_name} {version}",
        django_version=django.get_version(),
        user_model=observed[0]._meta.label,
        m2m_sender=observed[2]._meta.label if observed[2] is not None else None,
        receivers=receivers,
        operations=results,
        not_rolled_back=_not_rolled_back(connection.vendor, observed),
    )


def _run(
    op: Operation, scene: Scene, observed: tuple[type[Model], type[Model], type[Model] | None]
) -> OperationResult:
    using = scene.using
    connection = connections[using]
    user_model, profile_model, through = observed
    model = op.model or user_model
    senders: dict[str, list[type[Model]]] = {
        "pre_save": [user_model, profile_model],
        "post_save": [user_model, profile_model],
    }
    if through is not None:
        senders["m2m_changed"] = [through]
    if op.delete_receivers:
        senders.update({name: [user_model, profile_model] for name in DELETE_SIGNALS})
    result = OperationResult(
        key=op.key,
        code=op.code_for(scene),
        variant=op.variant,
        model=model._meta.label,
        listened=tuple(name for name in SIGNALS if name in senders),
    )
    reason = op.unsupported(scene)
    if reason is not None:
        return replace(result, unsupported=reason)
    steps = op.body(scene)
    try:
        with transaction.atomic(using=using):
            next(steps)  # the setup, not recorded
            users, profiles = _counts(using)
            with recording(using=using, senders=senders) as seen:
                next(steps, None)
            users_after, profiles_after = _counts(using)
            transaction.set_rollback(True, using=using)
    except UnbuildableUser as exc:
        return replace(result, unsupported=f"no user of this model can be built: {exc}")
    except Exception as exc:
        # A receiver may raise anything on a model it was not written for; the
        # row says so and the other operations still run.
        return replace(result, error=_error_text(exc))
    finally:
        steps.close()
    # Where delete receivers listened, their signals tell. Where none did, the
    # SQL tells whether Django deleted rows it never loaded: a fast delete.
    fast_deleted: tuple[str, ...] = ()
    listened_by_others: tuple[str, ...] = ()
    if not op.delete_receivers:
        qn = connection.ops.quote_name
        fast_deleted = tuple(
            m._meta.label
            for m in (user_model, profile_model)
            if seen.loaded_then_deleted(qn(m._meta.db_table)) == (False, True)
        )
        listened_by_others = tuple(
            m._meta.label
            for m in (user_model, profile_model)
            if any(SIGNALS[name].has_listeners(m) for name in DELETE_SIGNALS)
        )
    return replace(
        result,
        events=tuple(seen.events),
        users_created=users_after - users,
        profiles_created=profiles_after - profiles,
        fast_deleted=fast_deleted,
        delete_listened_by_others=listened_by_others,
    )


def _error_text(exc: BaseException) -> str:
    """The first line of the error; an error that is not the database's also names its type."""
    if isinstance(exc, DatabaseError) or not str(exc).strip():
        return first_line(exc)
    return f"{type(exc).__name__}: {first_line(exc)}"


def _not_rolled_back(
    vendor: str, observed: tuple[type[Model], type[Model], type[Model] | None]
) -> str | None:
    """What this run leaves behind on ``vendor``: ids drawn for the models with counters."""
    template = NOT_ROLLED_BACK.get(vendor)
    user_model, profile_model, _ = observed
    names = {user_model: "users", profile_model: "profiles"}
    groups = groups_field(user_model)
    if groups is not None:  # the operations create groups
        names[groups.related_model] = "groups"
    counted = [name for model, name in names.items() if isinstance(model._meta.pk, AutoFieldMixin)]
    if template is None or not counted:
        return None
    listed = ", ".join(counted[:-1]) + " and " + counted[-1] if len(counted) > 1 else counted[0]
    return template.format(models=listed)


def _counts(using: str) -> tuple[int, int]:
    return (
        get_user_model()._base_manager.using(using).count(),
        Profile._base_manager.using(using).count(),
    )


@dataclass(frozen=True)
class RawSaveWriter:
    """A receiver that wrote rows related to a user for a raw=True (loaddata) save."""

    receiver: str  # dotted name
    signal: str
    tables: tuple[str, ...]


class RawSaveProbeError(Exception):
    """No throwaway user could be made for the raw-save probe; the message says why."""


def raw_save_writers(*, using: str, packages: Collection[str]) -> list[RawSaveWriter]:
    """Receivers of the user model's pre_save and post_save that write rows for raw=True saves.

    Only receivers defined in the top-level ``packages`` are probed: the probe
    calls them, and code of other packages (a receiver that calls an HTTP API)
    must not run because a check did. A throwaway user, built for whichever
    user model is installed (``signalmatrix.users``), is inserted without
    signals; then each receiver is called by itself as Django would call it
    for ``loaddata``, in a savepoint, while the rows pointing at that user (its
    profile, its group memberships, any other relation) are counted. Each
    receiver is called unwrapped, past its switch: the question is what its
    code does, not whether it is on. All of it is rolled back.

    Raises DatabaseError when the database cannot be used (not migrated,
    unreachable), :class:`RawSaveProbeError` when no throwaway user can be
    built or inserted on this model.
    """
    user_model = get_user_model()
    probed = [
        (name, signal, receiver)
        for name, signal in (("pre_save", pre_save), ("post_save", post_save))
        for receiver in live_receivers(signal, user_model)
        if _top_level(inspect.unwrap(receiver)) in packages
    ]
    if not probed:
        return []
    try:
        user = new_user(user_model, f"signalmatrix-check-{secrets.token_hex(4)}")
    except UnbuildableUser as exc:
        raise RawSaveProbeError(f"no throwaway user can be built: {exc}") from exc
    relations = [
        f
        for f in user_model._meta.get_fields(include_hidden=True)
        if isinstance(f, ForeignObjectRel) and (f.one_to_many or f.one_to_one)
    ]
    users = user_model._base_manager.db_manager(using)
    writers = []
    with transaction.atomic(using=using):
        users.exists()  # DatabaseError here: the database cannot be used at all
        try:
            with transaction.atomic(using=using):
                users.bulk_create([user])  # no signal
        except DatabaseError as exc:
            raise RawSaveProbeError(
                f"inserting a throwaway user failed: {_error_text(exc)}"
            ) from exc
        user = users.get(**{user_model.USERNAME_FIELD: user.get_username()})
        for name, signal, receiver in probed:
            arguments: dict[str, Any] = {
                "signal": signal,
                "sender": user_model,
                "instance": user,
                "raw": True,
                "using": using,
                "update_fields": None,
            }
            if signal is post_save:
                arguments["created"] = True
            grew = _rows_written(inspect.unwrap(receiver), arguments, user, relations)
            if grew:
                writers.append(RawSaveWriter(dotted_name(receiver), name, grew))
        transaction.set_rollback(True, using=using)
    return writers


def _top_level(receiver: Callable[..., Any]) -> str:
    """The top-level package of the module ``receiver`` (or, for an instance, its class) is in."""
    return top_level_package(getattr(receiver, "__module__", None) or type(receiver).__module__)


def _rows_written(
    receiver: Callable[..., Any],
    arguments: dict[str, Any],
    user: Model,
    relations: list[ForeignObjectRel],
) -> tuple[str, ...]:
    using = arguments["using"]

    def counts() -> dict[str, int]:
        return {
            r.related_model._meta.db_table: r.related_model._base_manager.using(using)
            .filter(**{r.field.name: user.pk})
            .count()
            for r in relations
        }

    before = counts()
    try:
        with transaction.atomic(using=using):
            if iscoroutinefunction(receiver):
                async_to_sync(receiver)(**arguments)
            else:
                receiver(**arguments)
            after = counts()
            transaction.set_rollback(True, using=using)
    except Exception:  # a receiver that fails on a throwaway user wrote nothing
        return ()
    return tuple(table for table, count in after.items() if count > before[table])
