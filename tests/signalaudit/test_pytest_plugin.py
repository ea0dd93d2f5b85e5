"""The pytest plugin in-process (pytester), on this project's models and receivers.

Each inner run has the one-line conftest and writes through this run's test database
(the outer test holds it open; the inner run has no pytest-django of its own).
tests/system/test_signalaudit_pytest_plugin.py proves the same from a throwaway
project that only installed this package.
"""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model

pytest_plugins = ["pytester"]

pytestmark = pytest.mark.django_db(transaction=True)

User = get_user_model()

CONFTEST = 'pytest_plugins = ["signalaudit.pytest_plugin"]\n'
HEADER = """
import pytest
from django.contrib.auth.models import User
"""


def run(pytester: pytest.Pytester, body: str, *args: str) -> pytest.RunResult:
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile(test_inner=HEADER + body)
    return pytester.runpytest_inprocess("-p", "no:django", "-p", "no:cacheprovider", *args)


def test_markers_and_options_are_registered(pytester):
    pytester.makeconftest(CONFTEST)

    markers = pytester.runpytest_inprocess("-p", "no:django", "--markers")
    help_text = pytester.runpytest_inprocess("-p", "no:django", "--help")

    markers.stdout.fnmatch_lines(
        ["@pytest.mark.signal_audit: *", "@pytest.mark.signal_skips_expected(reason): *"]
    )
    help_text.stdout.fnmatch_lines(["*--signal-audit*", "*signal_audit (bool):*"])


def test_a_skip_fails_the_test_with_the_line_and_the_receivers(pytester):
    result = run(
        pytester,
        """
@pytest.mark.signal_audit
def test_bulk():
    User.objects.bulk_create([User(username="a"), User(username="b")])
""",
    )

    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "1 write(s) skipped receivers:",
            "auth.User bulk_create (*) at test_inner.py:6 skipped "
            "profiles.receivers.create_profile, profiles.receivers.send_welcome_email",
            "Intended? Mark the test @pytest.mark.signal_skips_expected(reason)*",
        ]
    )


def test_a_test_that_fails_on_its_own_keeps_its_failure_and_shows_the_skips(pytester):
    result = run(
        pytester,
        """
@pytest.mark.signal_audit
def test_bulk_then_wrong():
    User.objects.bulk_create([User(username="a")])
    assert User.objects.count() == 2
""",
    )

    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "E       assert 1 == 2",
            "*- Captured signal audit call -*",
            "auth.User bulk_create (*) at test_inner.py:6 skipped *",
        ]
    )
    assert "write(s) skipped receivers:" not in result.stdout.str()


def test_only_the_call_is_audited_not_fixture_teardown(pytester):
    result = run(
        pytester,
        """
@pytest.fixture
def cleanup():
    yield
    User.objects.bulk_create([User(username="teardown")])
    User.objects.update(first_name="x")


@pytest.mark.signal_audit
def test_body(cleanup):
    User.objects.create(username="body")
""",
    )

    result.assert_outcomes(passed=1)


def test_expected_marker_passes_and_the_fixture_holds_the_expected_skips(pytester):
    result = run(
        pytester,
        """
@pytest.mark.signal_skips_expected("import: profiles are backfilled")
def test_import(signal_skips):
    User.objects.bulk_create([User(username="a")])
    [skip] = signal_skips.skips
    assert skip.expected == "import: profiles are backfilled"
    assert signal_skips.unexpected == []
""",
    )

    result.assert_outcomes(passed=1)


@pytest.mark.parametrize("arguments", ["", '""', 'reason="  "'])
def test_expected_marker_without_a_reason_fails_saying_so(pytester, arguments):
    result = run(
        pytester,
        f"""
@pytest.mark.signal_audit
@pytest.mark.signal_skips_expected({arguments})
def test_import():
    User.objects.bulk_create([User(username="a")])
""",
    )

    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        ["*@pytest.mark.signal_skips_expected needs the reason the skips are intended*"]
    )
    assert User.objects.count() == 0  # the body never ran


def test_unaudited_tests_run_without_the_detector(pytester):
    result = run(
        pytester,
        """
from signalaudit import detector


def test_plain():
    User.objects.bulk_create([User(username="a")])
    assert not detector.active()


@pytest.mark.signal_audit
def test_marked():
    assert detector.active()
""",
    )

    result.assert_outcomes(passed=2)
