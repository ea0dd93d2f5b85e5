"""Every registered case, at a tiny size, through the runner and the renderers."""

from __future__ import annotations

import json

import pytest
from django.apps import apps
from django.contrib.auth import get_user_model
from django.db.models import Model

from bench import registry, report, runner
from bench.cases import seeding, welcome
from profiles.models import Profile, WelcomeMail
from seeding.models import SeededUser, SeedRun

User = get_user_model()

pytestmark = pytest.mark.django_db(transaction=True)

SIZE = 20

# Which cases go through save() and so get a profile per user from the receiver.
CASES_WITH_PROFILES = {
    "users_factory_boy",
    "users_save_loop",
    "seed_users_save",
    "users_create_loop",
}


def case_param(case: registry.Case) -> object:
    marks = [
        # Collected only where its apps are installed (python -m bench installs them;
        # tests/bench/test_welcome.py runs it that way).
        pytest.mark.applies_if(
            all(apps.is_installed(app) for app in case.requires_apps),
            f"needs {', '.join(case.requires_apps)}",
        )
    ]
    if case.environment is not None:  # the mail cases start an SMTP sink process
        marks.append(pytest.mark.processes)
    return pytest.param(case, marks=marks, id=case.name)


def rows_left(case: registry.Case) -> int:
    """What the case's counter counts, read after the run (the sink is gone by then)."""
    if case.counts is welcome.mails_sent:
        return WelcomeMail.objects.filter(status=WelcomeMail.Status.SENT).count()
    if case.counts is welcome.users_unmailed:
        return User.objects.count()
    assert case.counts is None or isinstance(case.counts, type), case.counts
    model: type[Model] = case.counts or User
    return model._default_manager.count()


@pytest.mark.parametrize("case", [case_param(c) for c in registry.all_cases()])
def test_case_creates_its_rows(case):
    [result] = runner.run_cases([case], size=SIZE, repeat=1, using="default")

    assert result.size == case.size_for(SIZE)
    assert len(result.rates) == 1
    assert result.median > 0
    assert result.peak_memory_bytes > 0
    if case.counts is seeding.users_deleted:  # a purge: the rows it counted are gone
        assert not User.objects.exists() and not Profile.objects.exists()
        assert not WelcomeMail.objects.exists() and not SeededUser.objects.exists()
        assert not SeedRun.objects.exists()
    elif case.teardown is None:
        # The last repetition's rows stay; the warm-up's were cleared before it.
        assert rows_left(case) == result.size
    # A case with a teardown leaves its background alone: tests/bench/test_fixed_cost.py.
    if case.group == "insert_users":
        # Receivers fire only through save().
        expected = User.objects.count() if case.name in CASES_WITH_PROFILES else 0
        assert Profile.objects.count() == expected


def test_every_case_renders_in_every_format():
    # Without the mail cases' processes and apps: test_case_creates_its_rows runs those.
    cases = [c for c in registry.all_cases() if c.environment is None and not c.requires_apps]
    results = runner.run_cases(cases, size=SIZE, repeat=1, using="default")
    environment = report.environment_describe(using="default", database="test", repeat=1)

    text = report.render(results, environment, "text")
    markdown = report.render(results, environment, "markdown")
    payload = json.loads(report.render(results, environment, "json"))

    for case in cases:
        assert case.name in text
        assert f"| {case.name} |" in markdown
    assert [r["case"] for r in payload["results"]] == [c.name for c in cases]
    assert all(len(r["rows_per_s"]["repetitions"]) == 1 for r in payload["results"])
    references = [r for r in payload["results"] if r["reference"]]
    assert references
    assert all(r["ratio"] == 1.0 for r in references)
    assert payload["environment"]["django"] in text.splitlines()[1]


def test_a_case_that_miscounts_its_rows_fails():
    def body(size, using):
        User.objects.create(username="only-one")
        return size

    liar = registry.Case(name="liar", group="g", body=body, reference=True)

    with pytest.raises(runner.BenchError, match="reported 5 row"):
        runner.run_cases([liar], size=5, repeat=1, using="default")


def test_each_repetition_starts_from_empty_tables():
    seen = []

    def body(size, using):
        seen.append((User.objects.count(), Profile.objects.count()))
        for i in range(size):
            User.objects.create(username=f"u{i}")  # same names every time: needs a clean table
        return size

    case = registry.Case(name="counting", group="g", body=body, reference=True)
    runner.run_cases([case], size=3, repeat=2, using="default")

    assert seen == [(0, 0)] * 3  # warm-up and two timed repetitions
