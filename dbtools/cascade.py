"""Deleting rows with everything that cascades from them: set-based wherever Django's
own delete would need no objects, and through Django's delete everywhere else.

``QuerySet.delete()`` loads every row it deletes unless the model passes
:meth:`~django.db.models.deletion.Collector.can_fast_delete`: no ``pre_delete``
or ``post_delete`` receiver, no multi-table parent, no generic relation, and
only ``DO_NOTHING`` relations pointing at it. A user model never passes (its
profiles cascade), so Django loads each user it deletes and then deletes the
dependents a few hundred keys a statement, building a lookup per key: about a
fifth of the speed the users were inserted at.

:func:`cascade_plan` asks the same questions of each model the delete reaches,
one model at a time. A model that passes, but for relations the plan deals
with itself, is deleted with one ``DELETE ... WHERE <path to the key> IN
(...)`` after the models that cascade from it (``CASCADE``: their own steps)
and after the rows that point at it are set (``SET_NULL``, ``SET_DEFAULT``,
``SET()``: one ``UPDATE`` each, as Django's collector runs them). A model that
fails (a delete receiver, ``PROTECT``, an on_delete function of one's own, ...)
is deleted through ``QuerySet.delete()``: Django loads those rows, sends their
signals, refuses or updates exactly as it would have, and handles whatever
cascades below them. What is deleted and set, and which signals are sent, is
what ``QuerySet.delete()`` of the root rows does; only a receiver's ``origin``
is the queryset of its own model, not the root's. Where the answer depends on
the whole graph (a ``RESTRICT``, a cycle of cascades), the plan is Django's
delete of the root rows, unchanged.

``m2m_changed`` plays no part: Django's delete of a user sends none (its
many-to-many rows go with a plain ``DELETE``), so its receivers never need the
objects either.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from django.db import connections
from django.db.models import (
    CASCADE,
    DO_NOTHING,
    RESTRICT,
    SET_DEFAULT,
    BooleanField,
    Expression,
    F,
    Model,
)
from django.db.models.deletion import get_candidate_relations_to_delete
from django.db.models.signals import post_delete, pre_delete

Action = Literal["delete", "update", "collect"]


@dataclass(frozen=True)
class CascadeStep:
    """What happens to the rows of ``model`` whose ``lookup`` (a path ending at the root's
    key) is among the keys: deleted with one statement, their ``field`` set as its
    on_delete says (SET_NULL, SET_DEFAULT, SET()) with one statement, or deleted
    through ``QuerySet.delete()`` (``collect``: Django needs them as objects)."""

    model: type[Model]
    lookup: str
    action: Action
    field: Any = None  # the ForeignKey an "update" step sets


@dataclass(frozen=True)
class CascadePlan:
    root: type[Model]
    steps: tuple[CascadeStep, ...]  # dependents before what they depend on; the root last
    # Why some rows go object by object, one reason per model; () when none does.
    object_by_object: tuple[str, ...]

    @property
    def set_based(self) -> bool:
        return not self.object_by_object


def cascade_plan(root: type[Model]) -> CascadePlan:
    """How to delete rows of ``root`` and everything that cascades from them."""
    whole = _whole_graph_reason(root)
    if whole is not None:
        step = CascadeStep(root, "pk", "collect")
        return CascadePlan(root=root, steps=(step,), object_by_object=(whole,))
    steps: list[CascadeStep] = []
    reasons: list[str] = []
    _plan(root, "pk", steps, reasons)
    # A model reached by two paths has two steps but one reason.
    return CascadePlan(
        root=root, steps=tuple(steps), object_by_object=tuple(dict.fromkeys(reasons))
    )


def cascade_delete(plan: CascadePlan, keys: Sequence[Any], *, using: str) -> Counter[str]:
    """Delete the plan's root rows with these primary keys, and what cascades; rows deleted
    per model label. Run it in a transaction: its statements only make sense together."""
    connection = connections[using]
    pk = plan.root._meta.pk
    assert pk is not None
    deleted: Counter[str] = Counter()
    for chunk in _chunks(keys, _keys_per_statement(using)):
        values = [pk.get_db_prep_value(key, connection) for key in chunk]
        for step in plan.steps:
            rows = step.model._base_manager.using(using)
            if step.action == "collect":
                deleted.update(rows.filter(**{f"{step.lookup}__in": chunk}).delete()[1])
                continue
            matching = rows.filter(_KeysIn(step.lookup, values))
            if step.action == "update":
                # As Django's collector does: one UPDATE, no signal, the value asked of
                # the on_delete handler once per batch (SET_DEFAULT and SET(callable)
                # only when there are rows: Django calls them for rows it found).
                on_delete = step.field.remote_field.on_delete
                if _lazy(on_delete) or matching.exists():
                    matching.update(**{step.field.name: _value_set(step.field, using)})
            else:
                # What Django's own fast delete runs: one DELETE, no signal, no cascade
                # (the plan deleted the dependents already).
                deleted[step.model._meta.label] += matching._raw_delete(using)
    return deleted


def _plan(model: type[Model], lookup: str, steps: list[CascadeStep], reasons: list[str]) -> None:
    """Append the steps for ``model``'s rows found by ``lookup``, dependents first."""
    reason = _needs_objects(model)
    if reason is not None:
        steps.append(CascadeStep(model, lookup, "collect"))
        reasons.append(reason)
        return
    for related in _relations_to(model):
        field, on_delete = related.field, related.field.remote_field.on_delete
        path = f"{field.name}__{lookup}"
        if on_delete is CASCADE:
            _plan(related.related_model, path, steps, reasons)
        elif _sets_a_value(on_delete):
            steps.append(CascadeStep(related.related_model, path, "update", field))
    steps.append(CascadeStep(model, lookup, "delete"))


def _relations_to(model: type[Model]) -> list[Any]:
    """The relations (ForeignObjectRel, which the stubs type as fields) whose on_delete a
    delete of ``model``'s rows runs: Django's own list."""
    return list(get_candidate_relations_to_delete(model._meta))


def _sets_a_value(on_delete: Any) -> bool:
    """SET_NULL, SET_DEFAULT and SET(): Django's collector updates those rows, never
    deletes them (and sends no signal for them)."""
    if _lazy(on_delete) or on_delete is SET_DEFAULT:
        return True
    deconstruct = getattr(on_delete, "deconstruct", None)  # SET(callable)'s closure has it
    return deconstruct is not None and deconstruct()[0] == "django.db.models.SET"


def _lazy(on_delete: Any) -> bool:
    """SET_NULL and SET(value): Django updates the rows without even looking for them."""
    return bool(getattr(on_delete, "lazy_sub_objs", False))


def _needs_objects(model: type[Model]) -> str | None:
    """Why Django would load this model's rows to delete them (can_fast_delete's questions,
    less the relations this plan deals with itself); None if it would not."""
    label = model._meta.label
    if pre_delete.has_listeners(model) or post_delete.has_listeners(model):
        return f"pre_delete/post_delete receivers on {label}"
    if model._meta.parents:
        return f"{label} is a multi-table inheritance child"
    if any(hasattr(field, "bulk_related_objects") for field in model._meta.private_fields):
        return f"{label} has a generic relation"
    for related in _relations_to(model):
        on_delete = related.field.remote_field.on_delete
        if on_delete not in (CASCADE, DO_NOTHING) and not _sets_a_value(on_delete):
            field = related.field
            return f"on_delete={on_delete.__name__} on {field.model._meta.label}.{field.name}"
    return None


class _FieldUpdate:
    """Stands in for Django's Collector to learn the value an on_delete handler sets."""

    value: Any = None

    def add_field_update(self, field: Any, value: Any, objs: Any) -> None:
        self.value = value


def _value_set(field: Any, using: str) -> Any:
    update = _FieldUpdate()
    field.remote_field.on_delete(update, field, None, using)
    return update.value


def _whole_graph_reason(root: type[Model]) -> str | None:
    """A RESTRICT or a cycle anywhere the cascade reaches: only Django's collector of the
    whole delete decides those, so the plan leaves the whole delete to it."""
    seen: set[type[Model]] = set()

    def visit(model: type[Model], path: tuple[type[Model], ...]) -> str | None:
        seen.add(model)
        for related in _relations_to(model):
            field, dependent = related.field, related.related_model
            if field.remote_field.on_delete is RESTRICT:
                return f"on_delete=RESTRICT on {field.model._meta.label}.{field.name}"
            if field.remote_field.on_delete is not CASCADE:
                continue
            if dependent in path:
                return f"a cycle of cascades through {dependent._meta.label}"
            if dependent not in seen:
                found = visit(dependent, (*path, dependent))
                if found is not None:
                    return found
        return None

    return visit(root, (root,))


def _keys_per_statement(using: str) -> int:
    """As many keys as one statement may bind (SQLite's 999 in Django's reckoning)."""
    limit = connections[using].features.max_query_params
    return limit if limit is not None else 1 << 62


def _chunks(keys: Sequence[Any], size: int) -> list[Sequence[Any]]:
    return [keys[start : start + size] for start in range(0, len(keys), size)]


class _KeysIn(Expression):
    """``<lookup's column> IN (%s, ...)`` over keys adapted for the database once per batch.

    The ``__in`` lookup prepares every value again for every statement, which
    costs more than the statement itself at this volume; the column (joins
    included) is still resolved by the ORM.
    """

    output_field = BooleanField()

    def __init__(self, lookup: str, values: Sequence[Any]) -> None:
        super().__init__()
        self.column: Any = F(lookup)
        self.values = values

    def get_source_expressions(self) -> list[Any]:
        return [self.column]

    def set_source_expressions(self, exprs: Sequence[Any]) -> None:
        [self.column] = exprs

    def as_sql(self, compiler: Any, connection: Any) -> tuple[str, tuple[Any, ...]]:
        column, params = compiler.compile(self.column)
        placeholders = ", ".join(["%s"] * len(self.values))
        return f"{column} IN ({placeholders})", (*params, *self.values)

    def as_postgresql(self, compiler: Any, connection: Any) -> tuple[str, tuple[Any, ...]]:
        # One array parameter: psycopg adapts it at once, where an IN list of
        # thousands of parameters costs milliseconds a statement to bind and parse.
        column, params = compiler.compile(self.column)
        return f"{column} = ANY(%s)", (*params, list(self.values))
