"""The set-based delete leaves the database as Django's own QuerySet.delete() does.

Each test deletes the same seeded users twice from the same rows, once with
Django's delete and once with the plan, each in a savepoint rolled back
afterwards, and compares what is left of every table, the counts, and the
delete signals sent; and it checks which steps the plan made set-based.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from django.conf import settings
from django.contrib.auth.models import Group
from django.db import connection, models, transaction
from django.db.models.deletion import ProtectedError, RestrictedError
from django.db.models.signals import m2m_changed, post_delete, pre_delete

from dbtools.cascade import CascadePlan, cascade_delete, cascade_plan
from profiles.models import Profile, WelcomeMail
from seeding.models import SeededUser
from seeding.purge import seeded_users_purge
from tests.dbtools import cascades
from tests.helpers.seeding import recorded_pks, seed
from tests.helpers.users import create_user, has_field, user_model, users

pytestmark = [pytest.mark.any_user_model]


@pytest.fixture(scope="module")
def probes(django_db_setup: None, django_db_blocker: Any) -> Iterator[dict[str, Any]]:
    with django_db_blocker.unblock(), cascades.extra_models(cascades.base_models()) as made:
        yield cascades.by_name(made)


@pytest.fixture
def seeded(probes: dict[str, Any], db: None) -> list[Any]:
    """30 seeded users (through save(): profiles and welcome-mail records) and two who stay,
    each with a row of every probe model, some pointing across, and groups where the
    user model has them. The keys of the seeded users, in order."""
    keeper = create_user(0, "keeper")
    cascades.KEEPER[:] = [keeper.pk]
    seed(30, via="save")
    keys = sorted(recorded_pks(), key=str)
    everyone = [*users().filter(pk__in=keys), keeper, create_user(1, "stays")]
    for user in everyone:
        child = probes["ProbeChild"].objects.create(user=user)
        probes["ProbeGrandchild"].objects.create(child=child)
        probes["ProbeChildNulled"].objects.create(child=child)
        for name in ("ProbeNulled", "ProbeDefaulted", "ProbeReassigned", "ProbeDangling"):
            probes[name].objects.create(user=user)
    # A row of a user who stays pointing at a seeded user's child, and the other way round.
    seeded_child = probes["ProbeChild"].objects.get(user_id=keys[0])
    probes["ProbeChildNulled"].objects.create(child=seeded_child)
    probes["ProbeGrandchild"].objects.create(child=probes["ProbeChild"].objects.get(user=keeper))
    if has_field("groups"):
        group = Group.objects.create(name="probes")
        for user in everyone[::3]:
            user.groups.add(group)
    return keys


class _Rollback(Exception):
    pass


def state(probes: dict[str, Any]) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table a user delete can reach, as plain values."""
    tables: list[type[models.Model]] = [
        user_model(),
        Profile,
        WelcomeMail,
        SeededUser,
        *probes.values(),
        *(field.remote_field.through for field in user_model()._meta.many_to_many),
    ]
    return {
        model._meta.label: sorted(model._base_manager.values_list(), key=repr) for model in tables
    }


# The delete signals the receivers of ``listening`` got: (signal, sender, pk).
SENT: list[tuple[str, str, str]] = []


def outcome(
    delete: Callable[[], Counter[str] | dict[str, int]], probes: dict[str, Any]
) -> tuple[Any, ...]:
    """What ``delete`` leaves and reports, and the delete signals it sends; rolled back."""
    SENT.clear()
    try:
        with transaction.atomic():
            counts = {label: n for label, n in delete().items() if n}
            after = state(probes)
            raise _Rollback
    except _Rollback:
        pass
    return counts, after, sorted(SENT)


def django_delete(keys: list[Any]) -> Callable[[], dict[str, int]]:
    return lambda: user_model()._base_manager.filter(pk__in=keys).delete()[1]


def plan_delete(plan: CascadePlan, keys: list[Any]) -> Callable[[], Counter[str]]:
    return lambda: cascade_delete(plan, keys, using="default")


def same_as_django(plan: CascadePlan, keys: list[Any], probes: dict[str, Any]) -> None:
    expected = outcome(django_delete(keys), probes)
    assert outcome(plan_delete(plan, keys), probes) == expected
    counts = expected[0]
    assert counts[user_model()._meta.label] == len(keys)


def actions(plan: CascadePlan) -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}
    for step in plan.steps:
        found.setdefault(step.model._meta.label, set()).add(step.action)
    return found


def record(sender: Any, instance: Any, signal: Any, **kwargs: Any) -> None:
    name = "pre_delete" if signal is pre_delete else "post_delete"
    SENT.append((name, sender._meta.label, str(instance.pk)))


@pytest.fixture
def listening(probes: dict[str, Any]) -> Iterator[Callable[[Any], None]]:
    """connect(sender): pre_delete and post_delete receivers on that model for the test,
    which record what they get in SENT. Only there: a receiver makes Django's delete
    load that model's rows, which is what the tests compare."""
    connected: list[Any] = []

    def connect(sender: Any) -> None:
        for signal in (pre_delete, post_delete):
            signal.connect(record, sender=sender, dispatch_uid="cascade-listening")
        connected.append(sender)

    yield connect
    for sender in connected:
        for signal in (pre_delete, post_delete):
            signal.disconnect(sender=sender, dispatch_uid="cascade-listening")


def test_without_delete_receivers_every_table_is_one_statement_and_the_result_django_s(
    probes, seeded
):
    plan = cascade_plan(user_model())
    assert plan.set_based and plan.object_by_object == ()
    found = actions(plan)
    assert "collect" not in set().union(*found.values())
    assert found[user_model()._meta.label] == {"delete"}
    assert plan.steps[-1].model is user_model()
    for label in ("profiles.Profile", "profiles.WelcomeMail", "seeding.SeededUser"):
        assert found[label] == {"delete"}
    assert found["seeding.ProbeGrandchild"] == {"delete"}  # through the child, before it
    for name in ("ProbeNulled", "ProbeDefaulted", "ProbeReassigned", "ProbeChildNulled"):
        assert found[f"seeding.{name}"] == {"update"}
    assert "seeding.ProbeDangling" not in found  # DO_NOTHING: left as Django leaves it
    order = [step.model for step in plan.steps]
    assert order.index(probes["ProbeGrandchild"]) < order.index(probes["ProbeChild"])
    assert order.index(probes["ProbeChildNulled"]) < order.index(probes["ProbeChild"])
    same_as_django(plan, seeded, probes)


@pytest.mark.parametrize("model", ["ProbeChild", "ProbeGrandchild", "profiles.Profile"])
def test_a_delete_receiver_sends_its_model_object_by_object_and_nothing_else(
    probes, seeded, listening, model
):
    sender = Profile if model == "profiles.Profile" else probes[model]
    listening(sender)
    plan = cascade_plan(user_model())
    assert plan.object_by_object == (f"pre_delete/post_delete receivers on {sender._meta.label}",)
    found = actions(plan)
    assert found[sender._meta.label] == {"collect"}
    assert found[user_model()._meta.label] == {"delete"}
    if sender is probes["ProbeChild"]:  # Django deletes what cascades from it
        assert "seeding.ProbeGrandchild" not in found
    same_as_django(plan, seeded, probes)
    assert {(name, label) for name, label, _ in SENT} == {
        ("pre_delete", sender._meta.label),
        ("post_delete", sender._meta.label),
    }


def test_a_delete_receiver_on_the_user_model_leaves_it_all_to_django(probes, seeded, listening):
    listening(user_model())
    plan = cascade_plan(user_model())
    assert [(step.model, step.action) for step in plan.steps] == [(user_model(), "collect")]
    same_as_django(plan, seeded, probes)
    assert len(SENT) == 2 * len(seeded)


def test_an_m2m_changed_receiver_keeps_it_set_based_as_django_s_delete_sends_none(probes, seeded):
    got = []
    m2m_changed.connect(lambda **kwargs: got.append(kwargs), dispatch_uid="cascade-m2m")
    try:
        plan = cascade_plan(user_model())
        assert plan.set_based
        same_as_django(plan, seeded, probes)
    finally:
        m2m_changed.disconnect(dispatch_uid="cascade-m2m")
    assert got == []


def test_more_keys_than_a_statement_binds_go_in_several(probes, seeded, monkeypatch):
    # As few as a backend may bind (Django's SQLite reckoning was 999; Django 6.0 asks
    # the SQLite build, often 250,000): every backend splits the keys the same way.
    # A class attribute on 5.2, a property (SQLite) or a cached one (PostgreSQL) on 6.x.
    monkeypatch.setattr(type(connection.features), "max_query_params", 100)
    monkeypatch.delitem(vars(connection.features), "max_query_params", raising=False)
    plan = cascade_plan(user_model())
    extra = seed(250).run_number
    keys = sorted(recorded_pks(extra), key=str)
    assert len(keys) > connection.features.max_query_params
    bound: list[int] = []

    def binds(execute: Any, sql: str, params: Any, many: bool, context: Any) -> Any:
        if sql.lstrip().upper().startswith("DELETE"):
            bound.append(len(params or ()))
        return execute(sql, params, many, context)

    expected = outcome(django_delete(keys), probes)
    with connection.execute_wrapper(binds):
        assert outcome(plan_delete(plan, keys), probes) == expected
    deletes = [step for step in plan.steps if step.action == "delete"]
    assert len(bound) == len(deletes) * 3  # 250 keys, 100 a statement: three each


def test_purge_deletes_every_cascade_and_sets_what_points_at_the_users(probes, seeded):
    kept = set(users().exclude(pk__in=seeded).values_list("pk", flat=True))
    result = seeded_users_purge(using="default", batch_size=7)
    assert (result.users, result.profiles, result.object_by_object) == (30, 30, ())
    assert set(users().values_list("pk", flat=True)) == kept
    assert set(probes["ProbeChild"].objects.values_list("user_id", flat=True)) == kept
    assert probes["ProbeGrandchild"].objects.count() == 3  # 2 kept children's, 1 across
    assert probes["ProbeNulled"].objects.filter(user=None).count() == 30
    assert probes["ProbeDefaulted"].objects.filter(user=None).count() == 30
    assert probes["ProbeReassigned"].objects.filter(user_id=cascades.KEEPER[0]).count() == 31
    assert probes["ProbeChildNulled"].objects.filter(child=None).count() == 31
    assert probes["ProbeDangling"].objects.count() == 32


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    ("on_delete", "error"), [(models.PROTECT, ProtectedError), (models.RESTRICT, RestrictedError)]
)
def test_protect_and_restrict_refuse_as_django_does(probes, on_delete, error):
    refusing = cascades.model_class(
        f"ProbeRefusing{on_delete.__name__.title()}",
        child=models.ForeignKey(probes["ProbeChild"], on_delete),
    )
    with cascades.extra_models([refusing]):
        seed(5)
        keys = sorted(recorded_pks(), key=str)
        for key in keys:
            refusing.objects.create(child=probes["ProbeChild"].objects.create(user_id=key))
        plan = cascade_plan(user_model())
        reason = f"on_delete={on_delete.__name__} on {refusing._meta.label}.child"
        assert plan.object_by_object == (reason,)
        if on_delete is models.RESTRICT:  # decided on the whole graph: Django's delete
            assert [step.action for step in plan.steps] == ["collect"]
        with pytest.raises(error):
            seeded_users_purge(using="default")
        assert users().count() == 5 and refusing.objects.count() == 5
        refusing.objects.all().delete()
        assert seeded_users_purge(using="default").users == 5
        assert not users().exists()


@pytest.mark.django_db(transaction=True)
def test_a_cycle_of_cascades_leaves_it_all_to_django(probes):
    tree = cascades.model_class(
        "ProbeTree",
        user=models.ForeignKey(settings.AUTH_USER_MODEL, models.CASCADE, related_name="+"),
        parent=models.ForeignKey("self", models.CASCADE, null=True),
    )
    with cascades.extra_models([tree]):
        seed(3)
        keys = sorted(recorded_pks(), key=str)
        stays = create_user(0, "stays")
        top = tree.objects.create(user_id=keys[0])
        # A user who stays owns nodes under a seeded user's: Django deletes them too.
        middle = tree.objects.create(user=stays, parent=top)
        tree.objects.create(user=stays, parent=middle)
        tree.objects.create(user=stays)
        plan = cascade_plan(user_model())
        assert plan.object_by_object == ("a cycle of cascades through seeding.ProbeTree",)
        assert [step.action for step in plan.steps] == ["collect"]
        same_as_django(plan, keys, {**probes, "ProbeTree": tree})
        seeded_users_purge(using="default")
        assert list(tree.objects.values_list("user_id", "parent")) == [(stays.pk, None)]
